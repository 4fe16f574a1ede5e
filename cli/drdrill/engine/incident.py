"""What incident mode does differently from a drill (DESIGN.md "Incident mode").

In a real outage the service is already down when drdrill starts, a failure hands control
to the person instead of rolling back on its own, and an engineer may join half-way
(``--from STEP``) after doing the first steps by hand.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drdrill.engine.context import RunContext
from drdrill.errors import BadInput
from drdrill.events import Event
from drdrill.probes.base import Canary, CanaryWrite
from drdrill.runbook.model import Runbook, Step


class DeferredSetupCanary:
    """A canary whose store is set up on the first write that can reach it, not before the
    run: in an outage the service (and so the canary's store) is down when the run starts.
    Until setup succeeds every write is a failed attempt; writes count from then."""

    def __init__(self, canary: Canary, on_ready: Callable[[], None]) -> None:
        self.canary = canary
        self.on_ready = on_ready
        self.ready = threading.Event()
        self.last_error = ""

    def setup(self) -> None:
        self.canary.setup()
        self.ready.set()

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        if not self.ready.is_set():
            try:
                self.setup()
            except Exception as exc:  # still down: this attempt failed, retry next tick
                self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return CanaryWrite(seq, False, f"canary store not ready: {self.last_error}")
            self.on_ready()
        return self.canary.write(seq, client_ts)

    def read_back(self) -> set[int]:
        if not self.ready.is_set():
            raise RuntimeError(f"the canary store never became reachable: {self.last_error}")
        return self.canary.read_back()

    def close(self) -> None:
        self.canary.close()


def check_from_step(runbook: Runbook, mode: str, from_step: str | None) -> None:
    """``--from STEP`` names a step of this mode's plan, in incident mode only."""
    if from_step is None:
        return
    if mode != "incident":
        raise BadInput("--from is for --mode incident only")
    names = [s.name for s in runbook.steps_for(mode)]
    groups = {s.group for s in runbook.steps_for(mode) if s.group}  # from a group's start
    if from_step not in names and from_step not in groups:
        raise BadInput(f"--from {from_step!r}: no such step in {runbook.name} ({mode} mode)",
                       hint="available steps: " + "; ".join(repr(n) for n in names))


def journal_done_outside(ctx: RunContext, from_step: str, done: set[int]) -> None:
    """``--from STEP``: the steps before STEP were done by a person outside drdrill; each
    gets an event naming who said so. They count as done, so the loop starts at STEP."""
    for step in ctx.runbook.steps_for(ctx.mode):
        if from_step in (step.name, step.group):
            return
        ctx.emit("step_done_outside", {"index": step.index, "name": step.name,
                                       "by": ctx.operator, "from_step": from_step})
        done.add(step.index)


@dataclass(frozen=True)
class Handoff:
    """Where an incident run stands when a step failed: what a person needs to take over."""

    failed_step: str
    error: str
    last_completed: str | None
    continue_argv: tuple[str, ...]

    @property
    def continue_command(self) -> str:
        return shlex.join(self.continue_argv)


def _failing_message(events: Sequence[Event], step: Step) -> str:
    """The failing task's own message (Ansible's msg) if a task failed, else the step's."""
    task_msg = ""
    finished = ""
    for event in events:
        if event.data.get("index") != step.index:
            continue
        if event.type == "task" and event.data.get("msg"):
            task = event.data.get("task", "")
            task_msg = f"{task}: {event.data['msg']}" if task else str(event.data["msg"])
        elif event.type == "step_finished" and event.data.get("phase") == "main":
            finished = str(event.data.get("error") or event.data.get("status", ""))
    return task_msg or finished or "failed"


def declared_t0_iso(events: Sequence[Event]) -> str | None:
    """The run's T0 as a wall instant, so a continuation keeps the same T0."""
    t0 = next((e for e in events if e.type == "t0"), None)
    started = next((e for e in events if e.type == "run_started"), None)
    if started is not None and started.data.get("declared_at"):
        return str(started.data["declared_at"])
    return t0.wall if t0 is not None else None


def build_handoff(ctx: RunContext, step: Step, done: set[int]) -> Handoff:
    declared_at_iso = declared_t0_iso(ctx.events)
    ran = [s for s in ctx.runbook.steps_for(ctx.mode) if s.index in done and s is not step]
    last = ran[-1].name if ran else None
    argv: list[str] = ["drdrill", "run", str(ctx.runbook.path), "-i", str(ctx.inventory.path),
                       "--mode", "incident"]
    if declared_at_iso:
        argv += ["--declared-at", declared_at_iso]
    argv += ["--from", step.name, "--operator", ctx.operator,
             "--runs-dir", str(ctx.run_dir.parent)]
    for name, value in ctx.extra_vars.items():  # the -e values this run was given
        argv += ["-e", f"{name}={value}"]
    return Handoff(step.name, _failing_message(ctx.events, step), last, tuple(argv))
