"""The executor interface between the engine and whatever runs a playbook step.

A step is *prepared* and then *released*. With ``request.prestage`` the executor starts
Ansible at ``prepare`` (process started, inventory and playbook loaded) and holds it until
the release, so its start-up is paid before the step is due; the step's start checkpoint
(step_started) is the release instant and its timeout counts from there. Without it,
``prepare`` only lays out the attempt's directory and the process starts at the release.

    prepared = executor.prepare(request)
    at = prepared.go(on_release)      # non-blocking; on_release(time.monotonic()) first
    outcome = prepared.wait()         # until the end
    outcome = prepared.release(on_release)   # go + wait
    prepared.discard()                # never released: no process left behind
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drdrill.executors.inventory import Inventory
from drdrill.runbook.model import Step


class Emit(Protocol):
    """Emit an event now, or at a wall-clock instant measured elsewhere (``at_wall``, UTC
    epoch seconds, e.g. the end of an Ansible task)."""

    def __call__(self, type_: str, data: Mapping[str, Any],
                 at_wall: float | None = None) -> None: ...


@dataclass(frozen=True)
class StepRequest:
    """Everything an executor needs for one attempt of one playbook step."""

    step: Step
    playbook: Path
    hosts: tuple[str, ...]
    inventory: Inventory
    step_dir: Path
    extra_vars: Mapping[str, Any]
    secret_vars: Mapping[str, Any]
    timeout_s: float | None
    cancel: threading.Event
    emit: Emit
    env: Mapping[str, str] = field(default_factory=dict)
    prestage: bool = False  # start the process at prepare, held until the release
    phase: str = "main"  # or "rollback": journaled with step_prepared


@dataclass(frozen=True)
class StepOutcome:
    status: str  # "ok" | "failed" | "timeout" | "aborted"
    error: str | None = None
    rc: int | None = None


OnRelease = Callable[[float], None]


class PreparedStep(Protocol):
    """One attempt, prepared. ``go`` releases it (``cancel``: a parallel member's own flag,
    replacing the request's) and returns the release instant (``time.monotonic()``);
    ``discard`` ends a step that is never released, leaving no process behind."""

    def go(self, on_release: OnRelease | None = None,
           cancel: threading.Event | None = None) -> float: ...

    def wait(self) -> StepOutcome: ...

    def release(self, on_release: OnRelease | None = None,
                cancel: threading.Event | None = None) -> StepOutcome: ...

    def discard(self) -> None: ...

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the process is held at its release point (within ``timeout_s``)."""
        ...


class Executor(Protocol):
    def prepare(self, request: StepRequest) -> PreparedStep: ...
