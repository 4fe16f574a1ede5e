"""``drdrill run --isolated``: drill the recovery on a clone while production keeps serving
(docs/isolated.md; SRM's "test recovery", ASR's "test failover").

The runbook's ``isolation.steps`` build the clone; T0 is the instant they finish (the clone
is up as a standby of nothing: its primary is "lost"). Then the steps that run isolated
execute with their production roles mapped to the clone's (``isolation.roles``) while the
probe and canary use the clone's endpoints (mapped at load time, runbook/isolation.py);
steps marked ``isolated: false`` never run. ``isolation.teardown`` runs in ``finally``, so
the clone is removed after success, failure, abort and Ctrl-C alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from drdrill.engine.context import RunContext
from drdrill.engine.loop import DrillState
from drdrill.engine.steps import execute_step
from drdrill.errors import BadInput
from drdrill.executors.inventory import Inventory
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.model import IsolationSpec, Runbook, Step

T0_SOURCE = "isolated_clone"
PHASE_BUILD = "isolation"
PHASE_TEARDOWN = "teardown"

Loop = Callable[[RunContext, DrillState], tuple[str, str | None]]


def check_isolated(runbook: Runbook, mode: str, from_step: str | None,
                   exercise: Path | None) -> IsolationSpec:
    """``--isolated`` needs an ``isolation:`` section and a drill (nothing is executed)."""
    if runbook.isolation is None:
        raise BadInput(f"--isolated: runbook {runbook.name!r} has no isolation: section",
                       hint="add one (docs/isolated.md) or run without --isolated")
    if mode != "drill" or from_step is not None:
        raise BadInput("--isolated is a drill on a clone; it does not combine with "
                       "--mode incident or --from")
    if exercise is not None:
        raise BadInput("--isolated does not combine with --exercise (an exercise result "
                       "must come from the real recovery)")
    return runbook.isolation


def _on_clone(step: Step, roles: Mapping[str, str]) -> Step:
    if step.role is None or step.role not in roles:
        return step
    return replace(step, role=roles[step.role])


def isolated_runbook(runbook: Runbook) -> Runbook:
    """The runbook as an isolated run executes it: ``isolated: false`` steps dropped (they
    keep their indexes: the record lists them as skipped), roles mapped to the clone's."""
    iso = runbook.isolation
    assert iso is not None
    skipped = tuple(s.name for s in (*runbook.steps, *runbook.rollback) if not s.isolated)
    return replace(
        runbook,
        steps=tuple(_on_clone(s, iso.roles) for s in runbook.steps if s.isolated),
        rollback=tuple(_on_clone(s, iso.roles) for s in runbook.rollback if s.isolated),
        isolation=replace(iso, skipped=skipped))


def production_runbook(path: Path, inventory: Inventory,
                       extra_vars: Mapping[str, Any]) -> Runbook:
    """The runbook with production's endpoints: an isolated drill also starts from a
    working production service (it clones the standby and reads the primary's position)."""
    return load_runbook(path, inventory, extra_vars=extra_vars, strict=True)


def stamp(runbook: Runbook) -> dict[str, Any]:
    """What run_started records about the isolation (the record's ``isolated`` field), for
    a runbook made by :func:`isolated_runbook`."""
    iso = runbook.isolation
    assert iso is not None
    return {"skipped_steps": list(iso.skipped),
            "roles": dict(iso.roles), "endpoints": dict(iso.endpoints),
            "build_steps": [s.name for s in iso.steps],
            "teardown_steps": [s.name for s in iso.teardown]}


def execute_isolated(ctx: RunContext, state: DrillState, loop: Loop) -> tuple[str, str | None]:
    """Build the clone, declare T0, run ``loop`` on it, and tear the clone down whatever
    happened (the teardown stops only on a second Ctrl-C: ``lab status`` shows a leftover)."""
    iso = ctx.runbook.isolation
    assert iso is not None
    try:
        failed = _build(ctx, iso)
        if failed is not None:
            return "aborted", failed
        ctx.emit("t0", {"source": T0_SOURCE, "step": None})
        state.t0_seen = True
        return loop(ctx, state)
    finally:
        _teardown(ctx, iso)


def _build(ctx: RunContext, iso: IsolationSpec) -> str | None:
    """Run the build steps in order; the reason the run aborts, or None."""
    ctx.emit("isolation_started", {"steps": [s.name for s in iso.steps]})
    for step in iso.steps:
        if ctx.cancel.is_set():
            return "interrupted by the operator"
        status = execute_step(ctx, step, PHASE_BUILD, ctx.cancel)
        if status != "ok":
            if ctx.cancel.is_set():
                return "interrupted by the operator"
            return f"isolation step {step.name!r} {status}: the clone was not built"
    return None


def _teardown(ctx: RunContext, iso: IsolationSpec) -> None:
    """Every teardown step runs even when one before it failed (each removes what it can)."""
    statuses: list[str] = []
    for step in iso.teardown:
        if ctx.hard_stop.is_set():
            ctx.emit("isolation_finished", {"teardown": "interrupted"})
            return
        statuses.append(execute_step(ctx, step, PHASE_TEARDOWN, ctx.hard_stop))
    ok = all(s == "ok" for s in statuses)
    ctx.emit("isolation_finished", {"teardown": "ok" if ok else "failed"})


def clone_endpoint_checks(runbook: Runbook, inventory: Inventory) -> list[Any]:
    """``preflight --isolated``: each endpoint the clone will serve on (the service DSN as
    mapped by ``isolation.endpoints``) must be free before the run — something answering
    there is a clone an earlier run left (killed orchestrator, second Ctrl-C), which the
    build would trip over or, worse, the recovery would act on. A refused TCP connection is
    free; an accepted one fails the check; no answer at all is a warning (cannot tell)."""
    import socket
    import time

    from drdrill.engine.preflight import CheckResult, runbook_hosts
    from drdrill.engine.readiness import _service_dsn, endpoints_of

    dsn = _service_dsn(runbook)
    if dsn is None:
        return []
    results = []
    for endpoint in endpoints_of(dsn, inventory, runbook_hosts(runbook, inventory)):
        label = endpoint.name or f"{endpoint.address}:{endpoint.port}"
        started = time.monotonic()
        try:
            with socket.create_connection((endpoint.address, endpoint.port), timeout=1.0):
                pass
        except ConnectionRefusedError:
            results.append(CheckResult(label, "isolated clone endpoint free", True,
                                       f"{endpoint.address}:{endpoint.port} free: the clone "
                                       "build starts the clone there",
                                       time.monotonic() - started))
            continue
        except OSError as exc:
            results.append(CheckResult(label, "isolated clone endpoint free", True,
                                       f"{endpoint.address}:{endpoint.port}: no answer "
                                       f"({exc}): cannot tell whether it is free",
                                       time.monotonic() - started, warning=True))
            continue
        results.append(CheckResult(label, "isolated clone endpoint free", False,
                                   f"something answers on {endpoint.address}:{endpoint.port}:"
                                   " a clone left by an earlier run? remove it (the lab: "
                                   "drdrill lab repair; elsewhere the runbook's isolation "
                                   "teardown)", time.monotonic() - started))
    return results
