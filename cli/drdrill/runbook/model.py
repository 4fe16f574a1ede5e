"""The runbook domain model: frozen dataclasses built by the loader from validated YAML.

Dicts appear only as ``options``/``vars`` mappings that are handed on as data (to a probe
implementation or to Ansible as extra vars); everything the engine reasons about is typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


class StepKind(StrEnum):
    """What a step does; exactly one of the runbook keys of the same name is set."""

    PLAYBOOK = "playbook"
    PROBE = "probe"
    WAIT_FOR = "wait_for"
    MANUAL = "manual"
    PAUSE = "pause"
    NOTIFY = "notify"
    COMMAND = "command"  # an argv run on a role's hosts (or locally), no shell, no Ansible


class OnFailure(StrEnum):
    ABORT = "abort"
    CONTINUE = "continue"


class RollbackPolicy(StrEnum):
    """When the rollback steps run. ON_FAILURE: also after a failed step (a verification
    with ``on_failure: continue``), and then before the service probe and the canary stop,
    so the rollback's outage and restoration are measured (engine/loop.py)."""

    ON_ABORT = "on-abort"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"
    NEVER = "never"


MODES = ("drill", "incident")


@dataclass(frozen=True)
class Objectives:
    rto_s: float
    rpo_s: float


@dataclass(frozen=True)
class ProbeSpec:
    """A check of something from the outside: ``type`` picks the implementation in the
    probe registry, ``options`` are that implementation's settings (validated by the schema)."""

    type: str
    options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    timeout_s: float = 5.0
    name: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    """The continuous service probe: what customers use, checked every ``interval_s``."""

    probe: ProbeSpec
    interval_s: float


@dataclass(frozen=True)
class CanarySpec:
    """The acknowledged-write marker stream used to measure RPO from real writes."""

    type: str
    interval_s: float
    options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    timeout_s: float = 2.0


@dataclass(frozen=True)
class NotifyTarget:
    """A webhook the run's events and notify steps are posted to (drdrill.notify)."""

    url: str
    name: str = ""
    format: str = "json"  # json | slack
    events: tuple[str, ...] = ()
    headers_secret: str | None = None  # a ``secrets:`` name sent as a bearer token
    timeout_s: float = 5.0  # one delivery attempt
    retries: int = 3


@dataclass(frozen=True)
class NotifySpec:
    """A notify step: a templated message (``str.format_map`` placeholders) for targets
    named in ``targets`` (all targets when empty)."""

    message: str
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One step of a runbook (or of its rollback). ``index`` is 1-based within its list."""

    name: str
    kind: StepKind
    index: int
    line: int = 0
    playbook: str | None = None
    role: str | None = None
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    probe: ProbeSpec | None = None
    instruction: str | None = None
    pause_s: float | None = None
    interval_s: float = 1.0
    timeout_s: float | None = None
    retries: int = 0
    retry_delay_s: float = 1.0
    on_failure: OnFailure = OnFailure.ABORT
    checkpoint: str | None = None
    disaster: bool = False
    only: tuple[str, ...] = MODES
    idempotent: bool = False
    gate: bool = False
    verification: bool = False  # counts toward the run's data verification verdict
    notify: NotifySpec | None = None
    owner: str | None = None  # manual steps: who is expected to carry them out
    expected_s: float | None = None  # manual steps: how long they should take
    isolated: bool = True  # False: never runs in --isolated mode (docs/isolated.md)
    prestage: bool = True  # playbook steps: start Ansible ahead, held until due (prestage.py)
    group: str | None = None  # the parallel group it runs in (members are consecutive)
    command: tuple[str, ...] = ()  # command steps: the argv, ``{{ name }}`` substituted per host
    local: bool = False  # command steps: run on the controller instead of a role's hosts
    fact: str | None = None  # command steps: journal the command's stdout as this fact

    @property
    def slug(self) -> str:
        """Directory-safe name: ``steps/<n>-<slug>/`` in the run directory."""
        cleaned = "".join(c if c.isalnum() else "-" for c in self.name.lower())
        return "-".join(part for part in cleaned.split("-") if part)[:48] or "step"

    def runs_in(self, mode: str) -> bool:
        return mode in self.only


@dataclass(frozen=True)
class IsolationSpec:
    """``isolation:``: how ``--isolated`` drills recovery on a clone (docs/isolated.md).
    ``roles`` maps a production role to the clone's, ``endpoints`` an endpoint variable to
    the variable holding the clone's value; ``steps`` build the clone, ``teardown`` removes
    it whatever happened."""

    steps: tuple[Step, ...]
    teardown: tuple[Step, ...]
    roles: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    endpoints: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    skipped: tuple[str, ...] = ()  # set for a run: the steps ``isolated: false`` dropped


@dataclass(frozen=True)
class Runbook:
    name: str
    path: Path
    sha256: str
    objectives: Objectives
    steps: tuple[Step, ...]
    description: str = ""
    owner: str = ""
    environment: str = "test"
    roles: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    vars: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    secrets: tuple[str, ...] = ()
    service: ServiceSpec | None = None
    canary: CanarySpec | None = None
    probes: Mapping[str, ProbeSpec] = field(default_factory=lambda: EMPTY)
    rollback: tuple[Step, ...] = ()
    rollback_policy: RollbackPolicy = RollbackPolicy.ON_ABORT
    playbook_dir: Path = field(default_factory=lambda: Path("playbooks"))
    preflight: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # parsed by engine
    notify: tuple[NotifyTarget, ...] = ()
    isolation: IsolationSpec | None = None

    @property
    def disaster_step(self) -> Step | None:
        return next((s for s in self.steps if s.disaster), None)

    def steps_for(self, mode: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.runs_in(mode))


def batches(steps: Sequence[Step]) -> list[tuple[Step, ...]]:
    """``steps`` cut into what runs at once: a parallel group's members (consecutive, same
    ``group``) together, every other step alone. Group names are unique in a runbook."""
    out: list[tuple[Step, ...]] = []
    for step in steps:
        if step.group is not None and out and out[-1][0].group == step.group:
            out[-1] = (*out[-1], step)
        else:
            out.append((step,))
    return out
