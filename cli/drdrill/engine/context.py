"""What a running drill carries around: the loaded inputs, the clock/bus, the cancel flags
and the operator interaction. Built once by ``run_drill``; steps only read it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drdrill.engine.prestage import Prestager
from drdrill.events import Event, EventBus
from drdrill.executors.base import Executor
from drdrill.executors.inventory import Inventory
from drdrill.notify.deliver import Notifier
from drdrill.probes.base import ProbeContext
from drdrill.runbook.model import Runbook, Step

ACK_CHOICES = ("done", "skip", "abort", "timeout")


@dataclass(frozen=True)
class Acknowledgment:
    """A person's answer to a manual step: ``choice`` is done, skip, abort, or timeout
    (nobody answered within the step's timeout); who, when (epoch seconds) and why."""

    choice: str
    by: str
    at: float = field(default_factory=time.time)
    comment: str = ""


class Interaction(Protocol):
    """How the engine asks a person something. The CLI implements it with prompts; tests
    and ``--yes`` with fixed answers. ``acknowledge`` waits at most ``timeout_s`` (None:
    until answered) and says so with choice ``timeout``; ``gate`` returns (go, by)."""

    def acknowledge(self, step: Step, timeout_s: float | None) -> Acknowledgment: ...

    def gate(self, step: Step) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class AutoAnswer:
    """``--yes``: every manual step acknowledged and every gate answered go, recorded as
    automatic on behalf of ``operator``."""

    operator: str

    def acknowledge(self, step: Step, timeout_s: float | None) -> Acknowledgment:
        return Acknowledgment("done", f"{self.operator} (--yes)")

    def gate(self, step: Step) -> tuple[bool, str]:
        return True, f"{self.operator} (--yes)"


@dataclass
class RunContext:
    runbook: Runbook
    inventory: Inventory
    mode: str
    run_dir: Path
    bus: EventBus
    executor: Executor
    interaction: Interaction
    operator: str
    auto_answer: bool
    extra_vars: Mapping[str, Any]
    secret_vars: Mapping[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    hard_stop: threading.Event = field(default_factory=threading.Event)
    events: list[Event] = field(default_factory=list)
    ssh_pool: Any = None
    ansible_env: dict[str, str] = field(default_factory=dict)
    notifier: Notifier | None = None
    prestager: Prestager = field(default_factory=Prestager)  # engine/prestage.py
    isolated: bool = False  # run --isolated: the steps act on a clone (engine/isolation.py)

    def emit(self, type_: str, data: Mapping[str, Any], at_wall: float | None = None) -> None:
        """Emit now, or at ``at_wall`` mapped onto the run clock (never later than now)."""
        at = None
        if at_wall is not None:
            clock = self.bus.clock
            at = min(at_wall - clock.wall_origin, clock.now())
        self.bus.emit(type_, data, at=at)

    @property
    def probe_context(self) -> ProbeContext:
        return ProbeContext(run_dir=self.run_dir, run_id=self.run_dir.name,
                            inventory=self.inventory, ssh_pool=self.ssh_pool)

    def hosts_for(self, step: Step) -> tuple[str, ...]:
        if step.role is None:
            return ()
        pattern = self.runbook.roles.get(step.role, step.role)
        return tuple(self.inventory.resolve(pattern))
