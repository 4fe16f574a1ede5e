"""What a running drill carries around: the loaded inputs, the clock/bus, the cancel flags
and the operator interaction. Built once by ``run_drill``; steps only read it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drdrill.events import Event, EventBus
from drdrill.executors.base import Executor
from drdrill.executors.inventory import Inventory
from drdrill.probes.base import ProbeContext
from drdrill.runbook.model import Runbook, Step


class Interaction(Protocol):
    """How the engine asks a person something. The CLI implements it with prompts; tests
    and ``--yes`` with fixed answers. Each returns who answered (``by``) with the answer."""

    def acknowledge(self, step: Step) -> tuple[bool, str]: ...

    def gate(self, step: Step) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class AutoAnswer:
    """``--yes``: every manual step acknowledged and every gate answered go, recorded as
    automatic on behalf of ``operator``."""

    operator: str

    def acknowledge(self, step: Step) -> tuple[bool, str]:
        return True, f"{self.operator} (--yes)"

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
