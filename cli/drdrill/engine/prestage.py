"""Which playbook steps to start ahead, and when (DESIGN.md "Speed": pre-staged steps).

The loop asks ``ahead`` before each batch (one step, or a parallel group) starts:
- the next batch is prepared while this one runs (at the latest);
- before the disaster step is released, every playbook step after it up to the one that
  marks ``service_restored`` — the RTO path — is prepared too and waited for (bounded), so
  their start-up is paid before T0; in incident mode (T0 is declared) the same holds for
  the steps from the first one up to service restored, prepared at the start.
Attempt 1 of a prepared step is released by engine/steps.py (``take``); a retry starts a
fresh process. What is never released is discarded: the loop calls ``discard_all`` once
the steps (or the rollback) are over, whatever the reason (abort, no-go, Ctrl-C, failure).

Facts do not flow into later steps' inputs (a ``[fact ...]`` is journaled only; vars,
hosts and the environment are fixed when the run starts), so preparing early never sees
stale inputs; ``depends_on_earlier`` is the one place to say otherwise when that changes.
Off with ``drdrill run --no-prestage`` or ``prestage: false`` on a step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from drdrill.executors.base import PreparedStep, StepRequest
from drdrill.runbook.model import Step, StepKind

if TYPE_CHECKING:
    from drdrill.engine.context import RunContext

SERVICE_RESTORED = "service_restored"
SETTLE_S = 30.0  # at most this long waiting, before T0, for the RTO path to be ready
MAX_PREPARED = 6  # processes held at once (each ansible-playbook holds ~60 MB)


def step_dir(ctx: RunContext, step: Step, attempt: int, phase: str) -> Path:
    phase_dir = "rollback" if phase == "rollback" else "steps"
    return ctx.run_dir / phase_dir / f"{step.index}-{step.slug}" / f"attempt-{attempt}"


def playbook_request(ctx: RunContext, step: Step, attempt: int, cancel: threading.Event,
                     phase: str, prestage: bool = False) -> StepRequest:
    """The request for one attempt of a playbook step (the same whether prepared ahead or
    at its turn: it depends on nothing an earlier step produces)."""
    assert step.playbook is not None
    hosts = ctx.hosts_for(step)
    # playbooks target ``hosts: "{{ drdrill_hosts }}"``: a --limit alone can match nothing
    variables = {**ctx.extra_vars, **step.vars, "drdrill_step": step.name,
                 "drdrill_hosts": ",".join(hosts)}
    return StepRequest(
        step=step, playbook=(ctx.runbook.playbook_dir / step.playbook).resolve(),
        hosts=hosts, inventory=ctx.inventory, step_dir=step_dir(ctx, step, attempt, phase),
        extra_vars=variables, secret_vars=ctx.secret_vars, timeout_s=step.timeout_s,
        cancel=cancel, emit=ctx.emit, env=ctx.ansible_env, prestage=prestage, phase=phase)


def depends_on_earlier(step: Step) -> bool:
    """Does the step's input come from an earlier step's result? Not today (see above)."""
    return False


@dataclass
class Prestager:
    """The prepared attempts of one run, by (phase, step index)."""

    enabled: bool = True
    prepared: dict[tuple[str, int], PreparedStep] = field(default_factory=dict)

    def eligible(self, step: Step) -> bool:
        return (self.enabled and step.kind is StepKind.PLAYBOOK and step.prestage
                and not depends_on_earlier(step))

    def ahead(self, ctx: RunContext, steps: Sequence[Step], current: Sequence[Step],
              phase: str = "main") -> None:
        """``current`` (one step or a group's members) is about to start; ``steps`` is the
        phase's full list in order. Prepare what comes next (see the module docstring)."""
        if not self.enabled or not current:
            return
        if phase == "main" and self._on_path(ctx, steps, current):
            return  # nothing new starts (and takes a CPU) while the service is being restored
        position = _position(steps, current[-1]) + 1
        wanted = _next_batch(steps, position)
        cancel = ctx.cancel if phase == "main" else ctx.hard_stop
        rto_path: list[Step] = []
        if phase == "main":
            rto_path = _rto_path(ctx, steps, current, wanted)
        for step in [*wanted, *rto_path]:
            self._prepare(ctx, step, phase, cancel)
        if phase == "main" and ctx.mode == "drill" and any(s.disaster for s in current):
            self._settle(ctx, steps, current, cancel)

    def _on_path(self, ctx: RunContext, steps: Sequence[Step], current: Sequence[Step]) -> bool:
        """Is ``current`` after T0 and not after the service_restored step? (Drill: after
        the disaster step; incident: any step but the first, T0 being declared.)"""
        here = _position(steps, current[0])
        if ctx.mode == "incident":
            first = 0 if here > 0 else len(steps)
        else:
            disasters = [i for i, s in enumerate(steps) if s.disaster]
            first = disasters[0] + 1 if disasters else len(steps)
        restored = [i for i, s in enumerate(steps) if s.checkpoint == SERVICE_RESTORED]
        last = restored[0] if restored else -1
        return first <= here <= last

    def _prepare(self, ctx: RunContext, step: Step, phase: str,
                 cancel: threading.Event) -> None:
        key = (phase, step.index)
        if key in self.prepared or not self.eligible(step) or len(self.prepared) >= MAX_PREPARED:
            return
        request = playbook_request(ctx, step, 1, cancel, phase, prestage=True)
        try:
            self.prepared[key] = ctx.executor.prepare(request)
        except Exception as exc:  # prepared at its turn instead; the step says why then
            ctx.emit("step_discarded", {"index": step.index, "name": step.name,
                                        "phase": phase, "reason": f"not prepared: {exc}"})

    def _settle(self, ctx: RunContext, steps: Sequence[Step], current: Sequence[Step],
                cancel: threading.Event) -> None:
        """Before the disaster step is released: wait (bounded) until the RTO path's
        prepared steps are ready, so none of their start-up lands after T0."""
        deadline = time.monotonic() + SETTLE_S
        path = {s.index for s in _rto_path(ctx, steps, current, [])}
        for (phase, index), prepared in list(self.prepared.items()):
            if phase != "main" or index not in path:
                continue
            while not prepared.wait_ready(0.05) and time.monotonic() < deadline:
                if cancel.is_set():
                    return

    def take(self, step: Step, phase: str) -> PreparedStep | None:
        """The prepared attempt 1 of ``step``, handed over to be released (or None)."""
        return self.prepared.pop((phase, step.index), None)

    def discard(self, ctx: RunContext, step: Step, phase: str, reason: str) -> None:
        prepared = self.prepared.pop((phase, step.index), None)
        if prepared is not None:
            prepared.discard()
            ctx.emit("step_discarded", {"index": step.index, "name": step.name,
                                        "phase": phase, "reason": reason})

    def discard_all(self, ctx: RunContext, phase: str, reason: str) -> None:
        steps = ctx.runbook.steps if phase == "main" else ctx.runbook.rollback
        for step in steps:
            self.discard(ctx, step, phase, reason)


def _position(steps: Sequence[Step], step: Step) -> int:
    for i, candidate in enumerate(steps):
        if candidate.index == step.index:
            return i
    return len(steps)


def _next_batch(steps: Sequence[Step], position: int) -> list[Step]:
    """The step at ``position`` or, when it opens a parallel group, the whole group."""
    if position >= len(steps):
        return []
    first = steps[position]
    if first.group is None:
        return [first]
    batch = []
    for step in steps[position:]:
        if step.group != first.group:
            break
        batch.append(step)
    return batch


def _rto_path(ctx: RunContext, steps: Sequence[Step], current: Sequence[Step],
              upcoming: Sequence[Step]) -> list[Step]:
    """The steps after the disaster step up to service_restored, when the disaster step
    is running now or next (drill); in incident mode, from the start up to it."""
    if ctx.mode == "incident":
        start = _position(steps, current[0])
    else:
        disaster = [s for s in [*current, *upcoming] if s.disaster]
        if not disaster:
            return []
        start = _position(steps, disaster[0]) + 1
    path = []
    for step in steps[start:]:
        path.append(step)
        if step.checkpoint == SERVICE_RESTORED:
            return path
    return []  # no service_restored mark: only the next batch is prepared
