"""The executor interface between the engine and whatever runs a playbook step.

A step is *prepared* and then *released*: today ``prepare`` only lays out the step's
directory, but the seam lets a future executor start Ansible ahead of time (process started,
inventory loaded, connections open) so the ~2 s start-up is paid before the step is due;
the step's start checkpoint is the release.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
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


@dataclass(frozen=True)
class StepOutcome:
    status: str  # "ok" | "failed" | "timeout" | "aborted"
    error: str | None = None
    rc: int | None = None


class PreparedStep(Protocol):
    def release(self) -> StepOutcome: ...


class Executor(Protocol):
    def prepare(self, request: StepRequest) -> PreparedStep: ...
