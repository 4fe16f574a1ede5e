"""Running a parallel group: its member steps at once, each on its own thread.

Every member is an ordinary step (``execute_step``): its own clock, journal events, record
row, timeout, retries and checkpoint. Each member has its own cancel flag, linked to the
run's (Ctrl-C, or the hard stop during rollback), so a timeout or a cancel ends that
member's process tree only, and stopping the run stops every member.

The threads are started first and wait at one release flag, so all members begin at the
same instant: members pre-staged by engine/prestage.py are first waited for (bounded) until
each is held ready at its release point, so one slow start-up does not shift a sibling's
start, and every member's timeout counts from that one release.

The caller's ``on_finish(step, status)`` runs on the calling thread as each member ends
(T0, failure policy); when it returns True the members still running are cancelled.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from drdrill.engine.context import RunContext
from drdrill.engine.steps import execute_step
from drdrill.runbook.model import Step

OnFinish = Callable[[Step, str], bool]
POLL_S = 0.05  # how soon a run-wide cancel reaches the members
JOIN_S = 30.0  # bound on waiting for a member after the group is left early
READY_S = 30.0  # bound on waiting for pre-staged members to be ready before the release


@dataclass
class _Member:
    step: Step
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


Done = tuple[_Member, str | BaseException]


def _body(ctx: RunContext, member: _Member, phase: str, release: threading.Event,
          done: queue.Queue[Done]) -> None:
    release.wait()
    try:
        status: str | BaseException = execute_step(ctx, member.step, phase, member.cancel)
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread to raise
        status = exc
    done.put((member, status))


def run_group(ctx: RunContext, steps: Sequence[Step], phase: str, cancel: threading.Event,
              on_finish: OnFinish) -> dict[int, str]:
    """Run ``steps`` at once; return each member's final status by step index. A member
    that raised (drdrill's own bug) is re-raised once every member has ended."""
    done: queue.Queue[Done] = queue.Queue()
    release = threading.Event()
    members = [_Member(step) for step in steps]
    for member in members:
        member.thread = threading.Thread(
            target=_body, args=(ctx, member, phase, release, done),
            name=f"drdrill-step-{member.step.index}", daemon=True)
        member.thread.start()
    _wait_ready(ctx, steps, phase, cancel)
    release.set()
    pending = {m.step.index: m for m in members}
    statuses: dict[int, str] = {}
    error: BaseException | None = None
    try:
        while pending:
            if cancel.is_set():
                _cancel(pending.values())
            try:
                member, status = done.get(timeout=POLL_S)
            except queue.Empty:
                continue
            del pending[member.step.index]
            if isinstance(status, BaseException):
                error = error or status
                _cancel(pending.values())
                continue
            statuses[member.step.index] = status
            if on_finish(member.step, status):
                _cancel(pending.values())
    finally:
        _cancel(pending.values())  # left early (an exception here): stop what still runs
        for member in pending.values():
            if member.thread is not None:
                member.thread.join(JOIN_S)
    if error is not None:
        raise error
    return statuses


def _wait_ready(ctx: RunContext, steps: Sequence[Step], phase: str,
                cancel: threading.Event) -> None:
    """Until every pre-staged member is held at its release point (or READY_S, or a
    cancel): then one release starts them all at once."""
    deadline = time.monotonic() + READY_S
    for step in steps:
        prepared = ctx.prestager.prepared.get((phase, step.index))
        while (prepared is not None and not cancel.is_set()
               and time.monotonic() < deadline and not prepared.wait_ready(POLL_S)):
            pass


def _cancel(members: Iterable[_Member]) -> None:
    for member in members:
        member.cancel.set()
