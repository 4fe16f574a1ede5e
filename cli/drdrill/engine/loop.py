"""The step loop shared by a fresh run and a resumed one: background probes, steps in
order with T0 and recovery marks, failure policy, rollback, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drdrill.engine.background import CanaryWriter, ServiceMonitor
from drdrill.engine.context import RunContext
from drdrill.engine.incident import DeferredSetupCanary, build_handoff
from drdrill.engine.parallel import run_group
from drdrill.engine.steps import execute_step
from drdrill.measure.metrics import compute_results
from drdrill.measure.verdict import decide
from drdrill.probes.base import make_canary, make_probe
from drdrill.runbook.model import RollbackPolicy, Step, batches


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
    rollback_over: bool = False  # rollback_finished was journaled (it runs at most once)


def _start_background(ctx: RunContext, state: DrillState
                      ) -> tuple[ServiceMonitor | None, CanaryWriter | None]:
    now = ctx.bus.clock.now
    emit_at = ctx.bus.emit_many  # each result stamped at its attempt's start
    monitor = writer = None
    if ctx.runbook.canary is not None:
        canary = make_canary(ctx.runbook.canary, ctx.probe_context)
        # the service may be down now (an isolated run: the clone is read-only until promoted)
        if (ctx.mode == "incident" or ctx.isolated) and not state.resumed:
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
        # resumed mid-rollback: the steps are over; only the rest of the rollback remains.
        # A measured rollback (on-failure, or an abort's) died with the probes and the
        # canary still running: they run again for the rest of it and the canary is read
        # back after it, or the run would report RPO "not measured" for want of a read-back
        measured = ctx.runbook.canary is not None and not any(
            e.type == "canary_readback" for e in ctx.events)
        monitor, writer = _start_background(ctx, state) if measured else (None, None)
        try:
            _maybe_rollback(ctx, state, state.aborted_reason)
        finally:
            if measured:
                _finish_background(ctx, monitor, writer)
        state.aborted_reason = state.aborted_reason or _stopped_in_rollback(ctx, state)
        if state.aborted_reason:
            return "aborted", state.aborted_reason
        return _verdict(ctx, state.failed)
    monitor, writer = _start_background(ctx, state)
    aborted_reason = state.aborted_reason
    try:
        if aborted_reason is None:
            try:
                aborted_reason = _steps(ctx, state)
            finally:  # prepared ahead, never released: no process may outlive the steps
                ctx.prestager.discard_all(ctx, "main", "not reached")
        if _rollback_measured(ctx, state, aborted_reason):
            _maybe_rollback(ctx, state, aborted_reason)
    finally:
        read_ok = _finish_background(ctx, monitor, writer)
        _maybe_rollback(ctx, state, aborted_reason)
        if writer is not None and not read_ok and state.rollback_announced:
            # interrupted with no primary up (e.g. Ctrl-C during promotion): the rollback
            # brought one back, so the canary can be read now; the last read-back counts
            ok, present, detail = writer.read_back()
            ctx.emit("canary_readback", {"ok": ok, "present": present,
                                         "detail": f"after the rollback: {detail}"})
    aborted_reason = aborted_reason or _stopped_in_rollback(ctx, state)
    if aborted_reason:
        return "aborted", aborted_reason
    return _verdict(ctx, state.failed)


def _stopped_in_rollback(ctx: RunContext, state: DrillState) -> str | None:
    """A Ctrl-C during an on-failure rollback does not stop it (a rollback runs to its end;
    a second one does), but the operator did interrupt the run: it ends aborted (exit 3),
    not as if nobody had asked."""
    if not ctx.cancel.is_set() or not state.rollback_announced:
        return None
    after = f" (after step {state.failed[0]!r} failed)" if state.failed else ""
    return f"interrupted by the operator during the rollback, which ran to its end{after}"


def _steps(ctx: RunContext, state: DrillState) -> str | None:
    for batch in batches(ctx.runbook.steps_for(ctx.mode)):
        todo = [s for s in batch if s.index not in state.done]  # resume: part of a group
        if not todo:
            continue
        if ctx.cancel.is_set():
            return "interrupted by the operator"
        if state.t0_seen and not state.recovery_marked:
            ctx.emit("recovery_started", {"index": todo[0].index, "name": todo[0].name})
            state.recovery_marked = True
        ctx.prestager.ahead(ctx, ctx.runbook.steps_for(ctx.mode), todo)  # engine/prestage.py
        if todo[0].group is None:
            step = todo[0]
            status = execute_step(ctx, step, "main", ctx.cancel)
            reason = _after_step(ctx, state, step, status)
            if reason:
                return _stop(ctx, state, step, status, reason)
            continue
        reason = _group(ctx, state, todo)
        if reason:
            return reason
    return None


def _after_step(ctx: RunContext, state: DrillState, step: Step, status: str) -> str | None:
    """Book a finished main step (done, T0, failed); the reason to stop the run, if any."""
    state.done.add(step.index)
    if status == "ok" and step.disaster and ctx.mode == "drill":
        ctx.emit("t0", {"source": "disaster_step", "step": step.name})
        state.t0_seen = True
    if status == "aborted":
        return ("interrupted by the operator" if ctx.cancel.is_set()
                else f"step {step.name!r} aborted")
    if status != "ok":
        state.failed.append(step.name)
        if ctx.mode == "incident" and status != "skipped":
            return f"step {step.name!r} {status}; incident mode: handed over to the operator"
        # a person who skipped a manual step was warned the run cannot pass: go on
        if (step.on_failure.value == "abort" and status != "skipped") or step.disaster:
            return f"step {step.name!r} {status}; on_failure: abort"
    return None


def _stop(ctx: RunContext, state: DrillState, step: Step, status: str, reason: str) -> str:
    if ctx.mode == "incident" and status != "skipped":  # say where things stand, how to go on
        _hand_off(ctx, state, step, status)
    return reason


def _group(ctx: RunContext, state: DrillState, members: list[Step]) -> str | None:
    """Run a parallel group. Drill mode: the first member that stops the run (on_failure
    abort, a failed disaster step, an abort) cancels its running siblings. Incident mode:
    the siblings finish (a half-done recovery action is worse), then the run is handed
    over. on_failure continue: the siblings finish and the run goes on."""
    first: list[tuple[Step, str, str]] = []

    def on_finish(step: Step, status: str) -> bool:
        reason = _after_step(ctx, state, step, status)
        if reason is None or first:
            return False
        first.append((step, status, reason))
        return ctx.mode != "incident"

    run_group(ctx, members, "main", ctx.cancel, on_finish)
    if not first:
        return None
    step, status, reason = first[0]
    return _stop(ctx, state, step, status, reason)


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


def _rollback_measured(ctx: RunContext, state: DrillState, aborted_reason: str | None) -> bool:
    """An abort (the operator's Ctrl-C included) or, on-failure, a failed step rolls back
    while the service probe and the canary still run, so what clients saw during the
    rollback — the outage it ends (the rollback of an interrupted failover is what brings
    the service back), its own outage — is measured like the rest of the run."""
    policy = ctx.runbook.rollback_policy
    if policy is RollbackPolicy.ON_ABORT:
        return aborted_reason is not None
    return policy is RollbackPolicy.ON_FAILURE and bool(aborted_reason or state.failed)


def _rollback_reason(ctx: RunContext, state: DrillState, aborted_reason: str | None) -> str:
    if aborted_reason:
        return aborted_reason
    if ctx.runbook.rollback_policy is RollbackPolicy.ON_FAILURE and state.failed:
        return f"policy: on-failure; step {state.failed[0]!r} failed"
    return "policy: always"


def _maybe_rollback(ctx: RunContext, state: DrillState, aborted_reason: str | None) -> None:
    policy = ctx.runbook.rollback_policy
    if not ctx.runbook.rollback or policy is RollbackPolicy.NEVER or state.rollback_over:
        return
    after_failure = policy is RollbackPolicy.ON_FAILURE and bool(state.failed)
    if (not state.rollback_announced and (aborted_reason is not None or after_failure
                                          or policy is RollbackPolicy.ALWAYS)
            and not _rollback_wanted(ctx)):
        return
    if policy in (RollbackPolicy.ON_ABORT, RollbackPolicy.ON_FAILURE) and \
            aborted_reason is None and not after_failure:
        return
    if not state.rollback_announced:  # a resumed rollback was announced before the crash
        ctx.emit("rollback_started", {"reason": _rollback_reason(ctx, state, aborted_reason),
                                      "after_abort": aborted_reason is not None})
        state.rollback_announced = True
    statuses: list[str] = []
    try:
        finished = _rollback_steps(ctx, state, statuses)
    finally:  # the next rollback batch is pre-staged: none may outlive the rollback
        ctx.prestager.discard_all(ctx, "rollback", "not reached")
    if not finished or ctx.hard_stop.is_set():
        _rollback_finished(ctx, state, "interrupted")
        return
    ok = all(s == "ok" for s in statuses) and not state.rollback_failed
    _rollback_finished(ctx, state, "ok" if ok else "failed")


def _rollback_steps(ctx: RunContext, state: DrillState, statuses: list[str]) -> bool:
    """Run the rollback's remaining batches, each one's successor pre-staged while it runs
    (engine/prestage.py); False if the hard stop came between two batches."""
    for batch in batches(ctx.runbook.rollback):
        todo = [s for s in batch if s.index not in state.rollback_done]
        if not todo:
            continue
        if ctx.hard_stop.is_set():
            return False
        ctx.prestager.ahead(ctx, ctx.runbook.rollback, todo, "rollback")
        if todo[0].group is None:
            statuses.append(execute_step(ctx, todo[0], "rollback", ctx.hard_stop))
            state.rollback_done.add(todo[0].index)
            continue

        def on_finish(step: Step, status: str) -> bool:  # a rollback runs to its end
            statuses.append(status)
            state.rollback_done.add(step.index)
            return False

        run_group(ctx, todo, "rollback", ctx.hard_stop, on_finish)
    return True


def _rollback_finished(ctx: RunContext, state: DrillState, status: str) -> None:
    ctx.emit("rollback_finished", {"status": status})
    state.rollback_over = True


def _verdict(ctx: RunContext, failed: list[str]) -> tuple[str, str | None]:
    """The one verdict (measure/verdict.py), from the events as journaled."""
    objectives = ctx.runbook.objectives
    results = compute_results(ctx.events, objectives.rto_s, objectives.rpo_s)
    verdict = decide(results, failed)
    return verdict.status, verdict.reason
