"""The step loop shared by a fresh run and a resumed one: background probes, steps in
order with T0 and recovery marks, failure policy, rollback, and the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drdrill.engine.background import CanaryWriter, ServiceMonitor
from drdrill.engine.context import RunContext
from drdrill.engine.incident import DeferredSetupCanary, build_handoff
from drdrill.engine.steps import execute_step
from drdrill.measure.metrics import compute_results
from drdrill.measure.verdict import decide
from drdrill.probes.base import make_canary, make_probe
from drdrill.runbook.model import RollbackPolicy, Step


@dataclass
class DrillState:
    """Where the loop stands. A fresh run starts empty; resume rebuilds it from the journal."""

    done: set[int] = field(default_factory=set)  # indexes of main steps finished
    failed: list[str] = field(default_factory=list)
    t0_seen: bool = False
    recovery_marked: bool = False
    next_canary_seq: int = 1
    resumed: bool = False
    rollback_done: set[int] = field(default_factory=set)
    rollback_announced: bool = False
    aborted_reason: str | None = None  # set when resuming a run that was rolling back
    rollback_failed: bool = False  # a rollback step that failed before a resume


def _start_background(ctx: RunContext, state: DrillState
                      ) -> tuple[ServiceMonitor | None, CanaryWriter | None]:
    now = ctx.bus.clock.now

    def emit_at(type_: str, data: Mapping[str, Any], at: float) -> None:
        ctx.bus.emit(type_, data, at=at)  # stamped at the attempt's start

    monitor = writer = None
    if ctx.runbook.canary is not None:
        canary = make_canary(ctx.runbook.canary, ctx.probe_context)
        if ctx.mode == "incident" and not state.resumed:  # the service may be down now
            canary = DeferredSetupCanary(canary, lambda: ctx.emit("canary_ready", {}))
        elif not state.resumed:  # a resumed run keeps the store it was writing to
            canary.setup()
        writer = CanaryWriter(canary, ctx.runbook.canary.interval_s, emit_at, now,
                              first_seq=state.next_canary_seq)
        writer.start()
    if ctx.runbook.service is not None:
        monitor = ServiceMonitor(make_probe(ctx.runbook.service.probe, ctx.probe_context),
                                 ctx.runbook.service.interval_s, emit_at, now)
        monitor.start()
    return monitor, writer


def declare_t0(ctx: RunContext, declared_at: datetime | None) -> None:
    clock = ctx.bus.clock
    offset = 0.0 if declared_at is None else declared_at.timestamp() - clock.wall_origin
    ctx.bus.emit("t0", {"source": "declared", "step": None}, at=min(offset, clock.now()))


def execute(ctx: RunContext, state: DrillState) -> tuple[str, str | None]:
    """Run the remaining steps; return (status, reason) for run_finished."""
    if state.rollback_announced:
        # resumed mid-rollback: the steps, the probes and the canary's read-back are over
        # (they end before a rollback starts); only the rest of the rollback remains
        _maybe_rollback(ctx, state, state.aborted_reason)
        if state.aborted_reason:
            return "aborted", state.aborted_reason
        return _verdict(ctx, state.failed)
    monitor, writer = _start_background(ctx, state)
    aborted_reason = state.aborted_reason
    try:
        if aborted_reason is None:
            aborted_reason = _steps(ctx, state)
    finally:
        read_ok = _finish_background(ctx, monitor, writer)
        _maybe_rollback(ctx, state, aborted_reason)
        if writer is not None and not read_ok and state.rollback_announced:
            # interrupted with no primary up (e.g. Ctrl-C during promotion): the rollback
            # brought one back, so the canary can be read now; the last read-back counts
            ok, present, detail = writer.read_back()
            ctx.emit("canary_readback", {"ok": ok, "present": present,
                                         "detail": f"after the rollback: {detail}"})
    if aborted_reason:
        return "aborted", aborted_reason
    return _verdict(ctx, state.failed)


def _steps(ctx: RunContext, state: DrillState) -> str | None:
    for step in ctx.runbook.steps_for(ctx.mode):
        if step.index in state.done:
            continue
        if ctx.cancel.is_set():
            return "interrupted by the operator"
        if state.t0_seen and not state.recovery_marked:
            ctx.emit("recovery_started", {"index": step.index, "name": step.name})
            state.recovery_marked = True
        status = execute_step(ctx, step, "main", ctx.cancel)
        state.done.add(step.index)
        if status == "ok" and step.disaster and ctx.mode == "drill":
            ctx.emit("t0", {"source": "disaster_step", "step": step.name})
            state.t0_seen = True
        if status == "aborted":
            if ctx.mode == "incident":  # say where things stand and how to continue
                _hand_off(ctx, state, step, status)
            return ("interrupted by the operator" if ctx.cancel.is_set()
                    else f"step {step.name!r} aborted")
        if status != "ok":
            state.failed.append(step.name)
            if ctx.mode == "incident" and status != "skipped":
                return _hand_off(ctx, state, step, status)
            # a person who skipped a manual step was warned the run cannot pass: go on
            if (step.on_failure.value == "abort" and status != "skipped") or step.disaster:
                return f"step {step.name!r} {status}; on_failure: abort"
    return None


def _finish_background(ctx: RunContext, monitor: ServiceMonitor | None,
                       writer: CanaryWriter | None) -> bool:
    """Read the canary back and stop the probes; False when the read-back failed."""
    ok = True
    if writer is not None:
        ok, present, detail = writer.read_back()
        ctx.emit("canary_readback", {"ok": ok, "present": present, "detail": detail})
    if monitor is not None:
        monitor.stop()
    return ok


def _hand_off(ctx: RunContext, state: DrillState, step: Step, status: str) -> str:
    """Incident mode: a failure stops the run and hands control to the person, saying
    where things stand and how to continue (no automatic rollback)."""
    handoff = build_handoff(ctx, step, state.done)
    ctx.emit("incident_handoff", {"index": step.index, "failed_step": handoff.failed_step,
                                  "status": status, "error": handoff.error,
                                  "last_completed": handoff.last_completed,
                                  "continue_command": handoff.continue_command})
    return f"step {step.name!r} {status}; incident mode: handed over to the operator"


def _rollback_wanted(ctx: RunContext) -> bool:
    """Incident mode: roll back only when a person at the terminal says so (never --yes)."""
    if ctx.mode != "incident":
        return True
    if ctx.auto_answer:
        ctx.emit("rollback_skipped", {"reason": "incident mode: no automatic rollback"})
        return False
    go, by = ctx.interaction.gate(ctx.runbook.rollback[0])
    ctx.emit("rollback_decision", {"answer": "go" if go else "no-go", "by": by})
    return go


def _maybe_rollback(ctx: RunContext, state: DrillState, aborted_reason: str | None) -> None:
    policy = ctx.runbook.rollback_policy
    if not ctx.runbook.rollback or policy is RollbackPolicy.NEVER:
        return
    if (not state.rollback_announced and (aborted_reason is not None
                                          or policy is RollbackPolicy.ALWAYS)
            and not _rollback_wanted(ctx)):
        return
    if policy is RollbackPolicy.ON_ABORT and aborted_reason is None:
        return
    if not state.rollback_announced:  # a resumed rollback was announced before the crash
        ctx.emit("rollback_started", {"reason": aborted_reason or "policy: always",
                                      "after_abort": aborted_reason is not None})
        state.rollback_announced = True
    statuses = []
    for step in ctx.runbook.rollback:
        if step.index in state.rollback_done:
            continue
        if ctx.hard_stop.is_set():
            ctx.emit("rollback_finished", {"status": "interrupted"})
            return
        statuses.append(execute_step(ctx, step, "rollback", ctx.hard_stop))
        state.rollback_done.add(step.index)
    if ctx.hard_stop.is_set():
        ctx.emit("rollback_finished", {"status": "interrupted"})
        return
    ok = all(s == "ok" for s in statuses) and not state.rollback_failed
    ctx.emit("rollback_finished", {"status": "ok" if ok else "failed"})


def _verdict(ctx: RunContext, failed: list[str]) -> tuple[str, str | None]:
    """The one verdict (measure/verdict.py), from the events as journaled."""
    objectives = ctx.runbook.objectives
    results = compute_results(ctx.events, objectives.rto_s, objectives.rpo_s)
    verdict = decide(results, failed)
    return verdict.status, verdict.reason
