"""``run_drill``: one execution of a runbook, from Python, no click or rich involved.

The run's outcome lives in its journal; the status and exit code are derived from it.
Rollback sits in ``finally`` paths so it runs after a failure policy or Ctrl-C alike.
"""

from __future__ import annotations

import getpass
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill import __version__
from drdrill.engine.background import CanaryWriter, ServiceMonitor
from drdrill.engine.context import AutoAnswer, Interaction, RunContext
from drdrill.engine.safety import check_can_run
from drdrill.engine.steps import execute_step
from drdrill.errors import EXIT_ABORTED, EXIT_MISSED, EXIT_OK, BadInput
from drdrill.events import Clock, Event, EventBus, EventHandler
from drdrill.executors.base import Executor
from drdrill.executors.inventory import Inventory, load_inventory
from drdrill.journal.record import build_record, write_record
from drdrill.journal.store import JOURNAL_NAME, JournalWriter
from drdrill.journal.verify import write_artifact_sums
from drdrill.probes.base import make_canary, make_probe
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.model import MODES, RollbackPolicy, Runbook, StepKind
from drdrill.engine.snapshot import snapshot_inputs


@dataclass(frozen=True)
class RunOptions:
    runbook: Path
    inventory: Path
    mode: str = "drill"
    declared_at: datetime | None = None
    extra_vars: Mapping[str, str] = field(default_factory=dict)
    yes: bool = False
    confirm: str | None = None
    operator: str | None = None
    runs_dir: Path = Path("runs")


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    exit_code: int
    record: dict[str, Any]


class _Collector:
    """Keeps the run's events in memory for deriving the verdict at the end."""

    def __init__(self, sink: list[Event]) -> None:
        self.sink = sink

    def handle(self, event: Event) -> None:
        self.sink.append(event)


def default_runs_dir() -> Path:
    return Path(os.environ.get("DRDRILL_RUNS_DIR", "runs"))


def new_run_id(runbook: Runbook) -> str:
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook.name}-{secrets.token_hex(3)}"


def _secret_split(runbook: Runbook, merged: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    secret_values: dict[str, Any] = {}
    for name in runbook.secrets:
        from_env = os.environ.get(f"DRDRILL_SECRET_{name.upper()}")
        if from_env is not None:
            secret_values[name] = from_env
        elif name in merged:
            secret_values[name] = merged[name]
        merged.pop(name, None)
    return merged, secret_values


def prepare_inputs(options: RunOptions) -> tuple[Runbook, Inventory]:
    if options.mode not in MODES:
        raise BadInput(f"unknown mode {options.mode!r}; use drill or incident")
    if options.declared_at is not None and options.mode != "incident":
        raise BadInput("--declared-at is for --mode incident only")
    inventory = load_inventory(options.inventory)
    runbook = load_runbook(options.runbook, inventory)
    return runbook, inventory


def run_drill(options: RunOptions, handlers: Sequence[EventHandler] = (),
              interaction: Interaction | None = None, executor: Executor | None = None,
              cancel: threading.Event | None = None,
              hard_stop: threading.Event | None = None) -> RunResult:
    """Run a drill end to end and return its derived result. Raises BadInput (nothing
    executed) or Aborted (safety gate) before anything runs; after that, every outcome is
    recorded in the journal and returned, never raised."""
    runbook, inventory = prepare_inputs(options)
    operator = options.operator or getpass.getuser()
    needs_person = any(s.kind is StepKind.MANUAL or s.gate for s in runbook.steps)
    check_can_run(runbook, inventory, options.confirm, options.yes)
    if interaction is None:
        if needs_person and not options.yes:
            raise BadInput("this runbook has manual steps or gates and no one to answer them",
                           hint="run it in a terminal, or pass --yes (never in production)")
        interaction = AutoAnswer(operator)
    if executor is None:
        from drdrill.executors.ansible import AnsibleExecutor

        executor = AnsibleExecutor()
    merged = {**runbook.vars, **options.extra_vars}
    extra_vars, secret_vars = _secret_split(runbook, merged)

    run_id = new_run_id(runbook)
    run_dir = options.runs_dir / run_id
    run_dir.mkdir(parents=True, mode=0o700)
    snapshot_inputs(runbook, inventory, run_dir)
    bus = EventBus(Clock(), redact=_redactor(secret_vars))
    events: list[Event] = []
    journal = JournalWriter(run_dir / JOURNAL_NAME)
    bus.subscribe(journal)
    bus.subscribe(_Collector(events))
    for handler in handlers:
        bus.subscribe(handler)
    ctx = RunContext(runbook=runbook, inventory=inventory, mode=options.mode, run_dir=run_dir,
                     bus=bus, executor=executor, interaction=interaction, operator=operator,
                     auto_answer=isinstance(interaction, AutoAnswer),
                     extra_vars={**extra_vars, "drdrill_run_id": run_id,
                                 "drdrill_mode": options.mode,
                                 "drdrill_run_dir": str(run_dir.resolve())},
                     secret_vars=secret_vars, cancel=cancel or threading.Event(),
                     hard_stop=hard_stop or threading.Event(), events=events)
    try:
        _emit_started(ctx, options, run_id)
        status, reason = _execute(ctx, options)
    except Exception as exc:  # recorded, never lost: the journal says what happened
        status, reason = "error", f"{type(exc).__name__}: {exc}"
    ctx.emit("run_finished", {"status": status, "reason": reason})
    journal.close()
    record = build_record(events, journal.last_hash)
    write_artifact_sums(run_dir)
    write_record(run_dir, record)
    _write_reports(run_dir)
    exit_code = {"passed": EXIT_OK, "failed": EXIT_MISSED}.get(str(record["status"]),
                                                              EXIT_ABORTED)
    return RunResult(run_id, run_dir, str(record["status"]), exit_code, record)


def _redactor(secret_vars: Mapping[str, Any]) -> Any:
    from drdrill.engine.redact import make_redactor

    return make_redactor([str(v) for v in secret_vars.values() if str(v)])


def _write_reports(run_dir: Path) -> None:
    try:
        from drdrill.report import write_reports
    except ImportError:
        return
    write_reports(run_dir)


def _emit_started(ctx: RunContext, options: RunOptions, run_id: str) -> None:
    runbook = ctx.runbook
    plan = [{"index": s.index, "name": s.name, "kind": s.kind.value,
             "hosts": list(ctx.hosts_for(s)), "timeout_s": s.timeout_s,
             "disaster": s.disaster, "checkpoint": s.checkpoint}
            for s in runbook.steps_for(ctx.mode)]
    ctx.emit("run_started", {
        "run_id": run_id,
        "runbook": {"name": runbook.name, "path": str(runbook.path), "sha256": runbook.sha256},
        "mode": ctx.mode, "operator": ctx.operator,
        "inventory": {"path": str(ctx.inventory.path), "sha256": ctx.inventory.sha256},
        "objectives": {"rto_s": runbook.objectives.rto_s, "rpo_s": runbook.objectives.rpo_s},
        "drdrill_version": __version__, "environment": runbook.environment,
        "declared_at": options.declared_at.isoformat() if options.declared_at else None,
        "service_interval_s": runbook.service.interval_s if runbook.service else None,
        "canary_interval_s": runbook.canary.interval_s if runbook.canary else None,
        "description": runbook.description, "owner": runbook.owner,
        "plan": plan,
    })


def _start_background(ctx: RunContext) -> tuple[ServiceMonitor | None, CanaryWriter | None]:
    now = ctx.bus.clock.now
    monitor = writer = None
    if ctx.runbook.canary is not None:
        canary = make_canary(ctx.runbook.canary, ctx.probe_context)
        canary.setup()
        writer = CanaryWriter(canary, ctx.runbook.canary.interval_s, ctx.emit, now)
        writer.start()
    if ctx.runbook.service is not None:
        monitor = ServiceMonitor(make_probe(ctx.runbook.service.probe, ctx.probe_context),
                                 ctx.runbook.service.interval_s, ctx.emit, now)
        monitor.start()
    return monitor, writer


def _declare_t0(ctx: RunContext, declared_at: datetime | None) -> None:
    clock = ctx.bus.clock
    offset = 0.0 if declared_at is None else declared_at.timestamp() - clock.wall_origin
    ctx.bus.emit("t0", {"source": "declared", "step": None}, at=min(offset, clock.now()))


def _execute(ctx: RunContext, options: RunOptions) -> tuple[str, str | None]:
    monitor, writer = _start_background(ctx)
    aborted_reason: str | None = None
    failed: list[str] = []
    try:
        if ctx.mode == "incident":
            _declare_t0(ctx, options.declared_at)
        t0_seen = ctx.mode == "incident"
        recovery_marked = False
        for step in ctx.runbook.steps_for(ctx.mode):
            if ctx.cancel.is_set():
                aborted_reason = "interrupted by the operator"
                break
            if t0_seen and not recovery_marked:
                ctx.emit("recovery_started", {"index": step.index, "name": step.name})
                recovery_marked = True
            status = execute_step(ctx, step, "main", ctx.cancel)
            if status == "ok" and step.disaster and ctx.mode == "drill":
                ctx.emit("t0", {"source": "disaster_step", "step": step.name})
                t0_seen = True
            if status == "aborted":
                aborted_reason = (f"step {step.name!r} aborted"
                                  if not ctx.cancel.is_set() else "interrupted by the operator")
                break
            if status != "ok":
                failed.append(step.name)
                if step.on_failure.value == "abort" or step.disaster:
                    aborted_reason = f"step {step.name!r} {status}; on_failure: abort"
                    break
    finally:
        _finish_background(ctx, monitor, writer)
        _maybe_rollback(ctx, aborted_reason)
    if aborted_reason:
        return "aborted", aborted_reason
    return _verdict(ctx, failed)


def _finish_background(ctx: RunContext, monitor: ServiceMonitor | None,
                       writer: CanaryWriter | None) -> None:
    if writer is not None:
        ok, present, detail = writer.read_back()
        ctx.emit("canary_readback", {"ok": ok, "present": present, "detail": detail})
    if monitor is not None:
        monitor.stop()


def _maybe_rollback(ctx: RunContext, aborted_reason: str | None) -> None:
    policy = ctx.runbook.rollback_policy
    if not ctx.runbook.rollback or policy is RollbackPolicy.NEVER:
        return
    if policy is RollbackPolicy.ON_ABORT and aborted_reason is None:
        return
    ctx.emit("rollback_started", {"reason": aborted_reason or "policy: always"})
    statuses = []
    for step in ctx.runbook.rollback:
        if ctx.hard_stop.is_set():
            ctx.emit("rollback_finished", {"status": "interrupted"})
            return
        statuses.append(execute_step(ctx, step, "rollback", ctx.hard_stop))
    ok = all(s == "ok" for s in statuses)
    ctx.emit("rollback_finished", {"status": "ok" if ok else "failed"})


def _verdict(ctx: RunContext, failed: list[str]) -> tuple[str, str | None]:
    from drdrill.measure.metrics import compute_results

    objectives = ctx.runbook.objectives
    results = compute_results(ctx.events, objectives.rto_s, objectives.rpo_s)
    missed = [name for name, met in (("RTO", results.rto_met), ("RPO", results.rpo_met))
              if met is False]
    if failed or missed:
        parts = [f"{m} objective missed" for m in missed]
        parts += [f"step {name!r} failed" for name in failed]
        return "failed", "; ".join(parts)
    return "passed", None
