"""Turn runbook data that passed the schema and the semantic checks into the frozen model.

Only durations can still fail here (a number too large to be one); those are collected as
located problems like every other.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drdrill.runbook.durations import parse_duration
from drdrill.runbook.endpoints import Bindings, substitute
from drdrill.runbook.groups import group_names
from drdrill.runbook.model import (
    MODES,
    CanarySpec,
    IsolationSpec,
    NotifySpec,
    NotifyTarget,
    Objectives,
    OnFailure,
    ProbeSpec,
    RollbackPolicy,
    Runbook,
    ServiceSpec,
    Step,
    StepKind,
)
from drdrill.runbook.schema import STEP_KINDS
from drdrill.runbook.source import PathItem, Problem, Source, show

MAX_DURATION_S = 1e9  # the schema's maximum for numbers, ~31 years
DEFAULT_PROBE_TIMEOUT_S = 5.0
DEFAULT_SERVICE_INTERVAL_S = 1.0
DEFAULT_CANARY_INTERVAL_S = 0.2
DEFAULT_CANARY_TIMEOUT_S = 2.0
DEFAULT_STEP_INTERVAL_S = 1.0
DEFAULT_RETRY_DELAY_S = 1.0
_IDEMPOTENT_KINDS = (StepKind.PROBE, StepKind.WAIT_FOR, StepKind.PAUSE)


_INTEGER_OPTIONS = ("port", "expect_exit", "expect_status")


def _integral(key: str, value: Any) -> Any:
    """The schema's integers accept ``5432.0``; hand probes a real int."""
    return int(value) if key in _INTEGER_OPTIONS and isinstance(value, float) else value


class _Builder:
    def __init__(self, source: Source, bindings: Bindings | None = None) -> None:
        self.source = source
        self.bindings = bindings  # {{ name }} in probe/canary options → inventory values
        self.problems: list[Problem] = []

    def duration(self, value: Any, path: list[PathItem], default: float) -> float:
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.problems.append(self.source.problem(path, str(exc)))
            return default
        if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
            self.problems.append(self.source.problem(
                path, f"{show(value)} is too long to be a duration — give a shorter one"))
            return default
        return seconds

    def probe(self, spec: dict[str, Any], path: list[PathItem], name: str = "") -> ProbeSpec:
        options = {k: _integral(k, substitute(copy.deepcopy(v), self.bindings))
                   for k, v in spec.items()
                   if k not in ("type", "timeout")}
        return ProbeSpec(
            type=spec["type"], options=MappingProxyType(options), name=name,
            timeout_s=self.duration(spec.get("timeout"), [*path, "timeout"],
                                    DEFAULT_PROBE_TIMEOUT_S))

    def step(self, raw: dict[str, Any], path: list[PathItem], index: int,
             probes: Mapping[str, ProbeSpec], group: str | None = None) -> Step:
        kind = StepKind(next(k for k in STEP_KINDS if k in raw))
        probe: ProbeSpec | None = None
        if kind in (StepKind.PROBE, StepKind.WAIT_FOR):
            ref = raw[kind.value]
            probe = probes[ref] if isinstance(ref, str) else self.probe(ref, [*path, kind.value])
        only = raw.get("only")
        return Step(
            name=raw["name"], kind=kind, index=index,
            line=self.source.locate(path)[0],
            playbook=raw.get("playbook"), role=raw.get("role"),
            vars=MappingProxyType(copy.deepcopy(raw.get("vars") or {})),
            probe=probe, instruction=raw.get("manual"),
            pause_s=(self.duration(raw["pause"], [*path, "pause"], 0.0)
                     if kind is StepKind.PAUSE else None),
            interval_s=self.duration(raw.get("interval"), [*path, "interval"],
                                     DEFAULT_STEP_INTERVAL_S),
            timeout_s=(self.duration(raw["timeout"], [*path, "timeout"], 0.0)
                       if "timeout" in raw else None),
            retries=int(raw.get("retries", 0)),
            retry_delay_s=self.duration(raw.get("retry_delay"), [*path, "retry_delay"],
                                        DEFAULT_RETRY_DELAY_S),
            on_failure=OnFailure(raw.get("on_failure", "abort")),
            checkpoint=raw.get("checkpoint"),
            disaster=bool(raw.get("disaster", False)),
            only=tuple(m for m in MODES if m in only) if only else MODES,
            idempotent=bool(raw.get("idempotent", kind in _IDEMPOTENT_KINDS)),
            verification=bool(raw.get("verification", False)),
            gate=bool(raw.get("gate", False)),
            notify=(NotifySpec(raw["notify"]["message"],
                               tuple(raw["notify"].get("targets") or ()))
                    if kind is StepKind.NOTIFY else None),
            owner=raw.get("owner"),
            expected_s=(self.duration(raw["expected"], [*path, "expected"], 0.0)
                        if "expected" in raw else None),
            group=group,
            isolated=bool(raw.get("isolated", True)),
            prestage=bool(raw.get("prestage", True)),
            command=tuple(str(a) for a in raw.get("command") or ()),
            local=bool(raw.get("local", False)), fact=raw.get("fact"),
        )

    def notify_targets(self, raws: list[Any]) -> tuple[NotifyTarget, ...]:
        return tuple(NotifyTarget(
            url=raw["url"], name=raw.get("name") or f"target-{i + 1}",
            format=raw.get("format", "json"), events=tuple(raw.get("events") or ()),
            headers_secret=raw.get("headers_secret"),
            timeout_s=self.duration(raw.get("timeout"), ["notify", i, "timeout"], 5.0),
            retries=int(raw.get("retries", 3))) for i, raw in enumerate(raws))

    def steps(self, raws: list[Any], prefix: list[PathItem],
              probes: Mapping[str, ProbeSpec]) -> tuple[Step, ...]:
        """The list flattened: a parallel group's members become consecutive steps carrying
        the group's name; indexes count steps (members included), 1-based."""
        names = group_names(raws, prefix)
        out: list[Step] = []
        for i, raw in enumerate(raws):
            if i not in names:
                out.append(self.step(raw, [*prefix, i], len(out) + 1, probes))
                continue
            for j, member in enumerate(raw["parallel"]):
                out.append(self.step(member, [*prefix, i, "parallel", j], len(out) + 1,
                                     probes, group=names[i]))
        return tuple(out)

    def runbook(self, playbook_dir: Path) -> Runbook:
        data = self.source.data
        probes = MappingProxyType({name: self.probe(spec, ["probes", name], name=name)
                                   for name, spec in (data.get("probes") or {}).items()})
        objectives = data["objectives"]
        service = canary = None
        if "service" in data:
            raw = data["service"]
            service = ServiceSpec(
                probe=self.probe(raw["probe"], ["service", "probe"]),
                interval_s=self.duration(raw.get("interval"), ["service", "interval"],
                                         DEFAULT_SERVICE_INTERVAL_S))
        if "canary" in data:
            raw = data["canary"]
            options = {k: substitute(copy.deepcopy(v), self.bindings) for k, v in raw.items()
                       if k not in ("type", "interval", "timeout")}
            canary = CanarySpec(
                type=raw["type"], options=MappingProxyType(options),
                interval_s=self.duration(raw.get("interval"), ["canary", "interval"],
                                         DEFAULT_CANARY_INTERVAL_S),
                timeout_s=self.duration(raw.get("timeout"), ["canary", "timeout"],
                                        DEFAULT_CANARY_TIMEOUT_S))
        rollback = data.get("rollback") or {}
        return Runbook(
            name=data["name"], path=self.source.path,
            sha256=hashlib.sha256(self.source.raw).hexdigest(),
            objectives=Objectives(
                rto_s=self.duration(objectives["rto"], ["objectives", "rto"], 0.0),
                rpo_s=self.duration(objectives["rpo"], ["objectives", "rpo"], 0.0)),
            steps=self.steps(data["steps"], ["steps"], probes),
            description=data.get("description", ""), owner=data.get("owner", ""),
            environment=data.get("environment", "test"),
            roles=MappingProxyType(dict(data.get("roles") or {})),
            vars=MappingProxyType(copy.deepcopy(data.get("vars") or {})),
            secrets=tuple(data.get("secrets") or ()),
            service=service, canary=canary, probes=probes,
            rollback=self.steps(rollback.get("steps") or [], ["rollback", "steps"], probes),
            rollback_policy=RollbackPolicy(rollback.get("policy", "on-abort")),
            playbook_dir=playbook_dir,
            preflight=MappingProxyType(copy.deepcopy(data.get("preflight") or {})),
            notify=self.notify_targets(data.get("notify") or []),
            isolation=self.isolation(data.get("isolation"), probes),
        )

    def isolation(self, raw: dict[str, Any] | None,
                  probes: Mapping[str, ProbeSpec]) -> IsolationSpec | None:
        """``isolation:`` (docs/isolated.md): its steps are numbered in their own lists."""
        if raw is None:
            return None
        return IsolationSpec(
            steps=tuple(self.step(s, ["isolation", "steps", i], i + 1, probes)
                        for i, s in enumerate(raw["steps"])),
            teardown=tuple(self.step(s, ["isolation", "teardown", i], i + 1, probes)
                           for i, s in enumerate(raw["teardown"])),
            roles=MappingProxyType(dict(raw["roles"])),
            endpoints=MappingProxyType(dict(raw["endpoints"])))


def build_runbook(source: Source, playbook_dir: Path,
                  bindings: Bindings | None = None) -> tuple[Runbook, list[Problem]]:
    """The model for valid ``source`` data, with any duration problems found on the way."""
    builder = _Builder(source, bindings)
    runbook = builder.runbook(playbook_dir)
    return runbook, builder.problems
