"""The step loop shared by a fresh run and a resumed one: background probes, steps in
order with T0 and recovery marks, failure policy, rollback, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drdrill.engine.background import CanaryWriter, ServiceMonitor
from drdrill.engine.context import RunContext
from drdrill.engine.steps import execute_step
from drdrill.measure.metrics import compute_results
from drdrill.probes.base import make_canary, make_probe
from drdrill.runbook.model import RollbackPolicy


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


def _start_background(ctx: RunContext, state: DrillState
                      ) -> tuple[ServiceMonitor | None, CanaryWriter | None]:
    now = ctx.bus.clock.now
    monitor = writer = None
    if ctx.runbook.canary is not None:
        canary = make_canary(ctx.runbook.canary, ctx.probe_context)
        if not state.resumed:  # a resumed run keeps the store it was writing to
            canary.setup()
        writer = CanaryWriter(canary, ctx.runbook.canary.interval_s, ctx.emit, now,
                              first_seq=state.next_canary_seq)
        writer.start()
    if ctx.runbook.service is not None:
        monitor = ServiceMonitor(make_probe(ctx.runbook.service.probe, ctx.probe_context),
                                 ctx.runbook.service.interval_s, ctx.emit, now)
        monitor.start()
    return monitor, writer


def declare_t0(ctx: RunContext, declared_at: datetime | None) -> None:
    clock = ctx.bus.clock
    offset = 0.0 if declared_at is None else declared_at.timestamp() - clock.wall_origin
    ctx.bus.emit("t0", {"source": "declared", "step": None}, at=min(offset, clock.now()))


def execute(ctx: RunContext, state: DrillState) -> tuple[str, str | None]:
    """Run the remaining steps; return (status, reason) for run_finished."""
    monitor, writer = _start_background(ctx, state)
    aborted_reason = state.aborted_reason
    try:
        if aborted_reason is None:
            aborted_reason = _steps(ctx, state)
    finally:
        _finish_background(ctx, monitor, writer)
        _maybe_rollback(ctx, state, aborted_reason)
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
            return ("interrupted by the operator" if ctx.cancel.is_set()
                    else f"step {step.name!r} aborted")
        if status != "ok":
            state.failed.append(step.name)
            if step.on_failure.value == "abort" or step.disaster:
                return f"step {step.name!r} {status}; on_failure: abort"
    return None


def _finish_background(ctx: RunContext, monitor: ServiceMonitor | None,
                       writer: CanaryWriter | None) -> None:
    if writer is not None:
        ok, present, detail = writer.read_back()
        ctx.emit("canary_readback", {"ok": ok, "present": present, "detail": detail})
    if monitor is not None:
        monitor.stop()


def _maybe_rollback(ctx: RunContext, state: DrillState, aborted_reason: str | None) -> None:
    policy = ctx.runbook.rollback_policy
    if not ctx.runbook.rollback or policy is RollbackPolicy.NEVER:
        return
    if policy is RollbackPolicy.ON_ABORT and aborted_reason is None:
        return
    if not state.rollback_announced:  # a resumed rollback was announced before the crash
        ctx.emit("rollback_started", {"reason": aborted_reason or "policy: always"})
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
    ok = all(s == "ok" for s in statuses)
    ctx.emit("rollback_finished", {"status": "ok" if ok else "failed"})


def _verdict(ctx: RunContext, failed: list[str]) -> tuple[str, str | None]:
    objectives = ctx.runbook.objectives
    results = compute_results(ctx.events, objectives.rto_s, objectives.rpo_s)
    missed = [name for name, met in (("RTO", results.rto_met), ("RPO", results.rpo_met))
              if met is False]
    if failed or missed:
        parts = [f"{m} objective missed" for m in missed]
        parts += [f"step {name!r} failed" for name in failed]
        return "failed", "; ".join(parts)
    return "passed", None
