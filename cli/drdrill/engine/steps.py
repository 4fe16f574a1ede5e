"""Executing one step of any kind, with its timeout, retries, gate and checkpoint.

A failed step is recorded, not raised (chaoslib's habit): the caller decides from the
returned status what the failure policy means for the run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from drdrill.engine.context import RunContext
from drdrill.engine.prestage import playbook_request
from drdrill.events import Event, utc_iso
from drdrill.executors.base import StepOutcome
from drdrill.notify.message import message_facts, render
from drdrill.probes.base import make_probe
from drdrill.runbook.model import Step, StepKind

DEFAULT_WAIT_TIMEOUT_S = 300.0


def _run_probe(ctx: RunContext, step: Step) -> StepOutcome:
    assert step.probe is not None
    probe = make_probe(step.probe, ctx.probe_context)
    try:
        result = probe.check()
    finally:
        probe.close()
    return StepOutcome("ok" if result.ok else "failed", None if result.ok else result.detail)


def _wait_for(ctx: RunContext, step: Step, cancel: threading.Event) -> StepOutcome:
    assert step.probe is not None
    timeout = step.timeout_s if step.timeout_s is not None else DEFAULT_WAIT_TIMEOUT_S
    deadline = time.monotonic() + timeout
    probe = make_probe(step.probe, ctx.probe_context)
    last = ""
    try:
        while True:
            result = probe.check()
            if result.ok:
                return StepOutcome("ok")
            last = result.detail
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return StepOutcome("timeout", f"not passed within {timeout:g}s: {last}")
            if cancel.wait(min(step.interval_s, remaining)):
                return StepOutcome("aborted", "cancelled")
    finally:
        probe.close()


def _pause(step: Step, cancel: threading.Event) -> StepOutcome:
    if cancel.wait(step.pause_s or 0.0):
        return StepOutcome("aborted", "cancelled")
    return StepOutcome("ok")


def _manual(ctx: RunContext, step: Step) -> tuple[StepOutcome, dict[str, Any]]:
    """Timed human work: who owns it, how long it should take, and — past its timeout —
    an escalation (``manual_overdue``, notified) and a timeout status for on_failure."""
    who = {"index": step.index, "name": step.name, "what": "manual step", "owner": step.owner,
           "expected_s": step.expected_s, "timeout_s": step.timeout_s}
    if not ctx.auto_answer:
        ctx.emit("gate_waiting", {**who, "instruction": step.instruction})
    asked = time.monotonic()
    ack = ctx.interaction.acknowledge(step, step.timeout_s)
    waited = round(time.monotonic() - asked, 6)
    info = {"acknowledged_by": ack.by, "acknowledged_at": utc_iso(ack.at), "choice": ack.choice,
            "comment": ack.comment, "auto": ctx.auto_answer, "instruction": step.instruction,
            "owner": step.owner, "expected_s": step.expected_s, "waited_s": waited}
    if ack.choice == "timeout":
        ctx.emit("manual_overdue", {**who, "waited_s": waited,
                                    "on_failure": step.on_failure.value})
        owner = f" (owner: {step.owner})" if step.owner else ""
        return StepOutcome("timeout", f"not acknowledged within {step.timeout_s:g}s{owner}; "
                                      "escalated"), info
    note = f": {ack.comment}" if ack.comment else ""
    if ack.choice == "skip":
        return StepOutcome("skipped", f"skipped by {ack.by}{note}"), info
    if ack.choice == "abort":
        return StepOutcome("aborted", f"aborted by {ack.by}{note}"), info
    return StepOutcome("ok"), info


def _notify(ctx: RunContext, step: Step) -> tuple[StepOutcome, dict[str, Any]]:
    """Compose the message now; delivery is queued (never waited for). Without targets
    the message is only journaled, so the record shows what would have been sent."""
    assert step.notify is not None
    clock = ctx.bus.clock
    now = clock.now()
    facts = message_facts(list(ctx.events), now, clock.wall_at(now))
    text = render(step.notify.message, facts)
    data = {"index": step.index, "name": step.name, "message": text}
    sent_to: list[str] = []
    if ctx.notifier is not None:
        sent_to = ctx.notifier.post_message(text, step.notify.targets, facts,
                                            Event("notify_message", data, clock.wall_at(now),
                                                  now))
    ctx.emit("notify_message", {**data, "targets": sent_to,
                                "delivery": "queued" if sent_to else
                                "not sent: no notify targets"})
    return StepOutcome("ok"), {"message": text, "targets": sent_to}


class _Start:
    """Journals an attempt's step_started once: playbook attempts at their release instant
    (a pre-staged process was started earlier: engine/prestage.py), the rest right away."""

    def __init__(self, ctx: RunContext, data: dict[str, Any]) -> None:
        self.ctx, self.data, self.done = ctx, data, False

    def __call__(self, at_monotonic: float | None = None) -> None:
        if self.done:
            return
        self.done = True
        clock = self.ctx.bus.clock
        at = None if at_monotonic is None else at_monotonic - clock.mono_origin
        self.ctx.bus.emit("step_started", self.data, at=at)


def _playbook(ctx: RunContext, step: Step, attempt: int, cancel: threading.Event,
              phase: str, start: _Start) -> StepOutcome:
    prepared = ctx.prestager.take(step, phase) if attempt == 1 else None
    staged = prepared is not None
    if prepared is None:
        prepared = ctx.executor.prepare(playbook_request(ctx, step, attempt, cancel, phase))
    ready = staged and prepared.wait_ready(0.0)  # held at its release point already?
    at = prepared.go(start, cancel)
    if staged:
        waited = 0.0 if ready else time.monotonic() - at
        ctx.bus.emit("step_released", {
            "index": step.index, "name": step.name, "phase": phase, "attempt": attempt,
            "ready": ready, "waited_ready_s": round(waited, 6)},
            at=at - ctx.bus.clock.mono_origin)
    return prepared.wait()


def _attempt(ctx: RunContext, step: Step, attempt: int, cancel: threading.Event, phase: str,
             start: _Start) -> tuple[StepOutcome, dict[str, Any] | None]:
    if step.kind is StepKind.PLAYBOOK:
        return _playbook(ctx, step, attempt, cancel, phase, start), None
    start()
    if step.kind is StepKind.COMMAND:
        from drdrill.engine.command_step import run_command

        return run_command(ctx, step, attempt, cancel, phase), None
    if step.kind is StepKind.PROBE:
        return _run_probe(ctx, step), None
    if step.kind is StepKind.WAIT_FOR:
        return _wait_for(ctx, step, cancel), None
    if step.kind is StepKind.PAUSE:
        return _pause(step, cancel), None
    if step.kind is StepKind.NOTIFY:
        return _notify(ctx, step)
    return _manual(ctx, step)


def _gate(ctx: RunContext, step: Step, phase: str) -> bool:
    if not ctx.auto_answer:
        ctx.emit("gate_waiting", {"index": step.index, "name": step.name, "what": "gate before",
                                  "phase": phase, "owner": step.owner})
    go, by = ctx.interaction.gate(step)
    ctx.emit("gate", {"index": step.index, "name": step.name, "phase": phase,
                      "answer": "go" if go else "no-go", "by": by})
    return go


def execute_step(ctx: RunContext, step: Step, phase: str, cancel: threading.Event) -> str:
    """Run ``step`` with retries; journal start, attempts, end and checkpoint. Returns the
    final status: ok, failed, timeout, skipped (a person skipped a manual step) or
    aborted."""
    base = {"index": step.index, "name": step.name, "kind": step.kind.value, "phase": phase,
            "verification": step.verification}
    if step.group is not None:  # a parallel group's member: its row says which group
        base["group"] = step.group
    if step.gate and not _gate(ctx, step, phase):
        ctx.emit("step_finished", {**base, "status": "aborted", "attempt": 0,
                                   "error": "no-go at the gate"})
        return "aborted"
    hosts = list(ctx.hosts_for(step))
    outcome = StepOutcome("failed", "not run")
    manual: dict[str, Any] | None = None  # a person's answer, or a notify step's message
    for attempt in range(1, step.retries + 2):
        start = _Start(ctx, {**base, "hosts": hosts, "attempt": attempt})
        try:
            outcome, manual = _attempt(ctx, step, attempt, cancel, phase, start)
        except Exception as exc:  # a broken probe/executor is a failed step, not a crash
            outcome = StepOutcome("failed", f"{type(exc).__name__}: {exc}")
        start()  # not journaled yet only when preparing the attempt failed
        if outcome.status in ("ok", "aborted", "skipped") or attempt > step.retries:
            break
        ctx.emit("step_retry", {**base, "attempt": attempt, "error": outcome.error})
        if cancel.wait(step.retry_delay_s):
            outcome = StepOutcome("aborted", "cancelled")
            break
    finished: dict[str, Any] = {**base, "status": outcome.status, "attempt": attempt,
                                "error": outcome.error}
    if manual is not None:
        finished["notify" if step.kind is StepKind.NOTIFY else "manual"] = manual
    ctx.emit("step_finished", finished)
    if outcome.status == "ok" and step.checkpoint:
        ctx.emit("checkpoint", {"name": step.checkpoint, "step": step.name})
    return outcome.status
