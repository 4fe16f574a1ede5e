"""``plan``: the ordered steps of one mode with their hosts and timeouts, and whether the
steps between T0 and service restored could exceed the RTO objective on timeouts alone."""

from __future__ import annotations

from dataclasses import dataclass

from drdrill.executors.inventory import Inventory
from drdrill.runbook.model import Runbook, Step, StepKind, batches

ANSIBLE_STARTUP_S = 2.0  # measured per playbook step (FIELD-NOTES.md)


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    hosts: tuple[str, ...]
    on_rto_path: bool  # between T0 and the service_restored checkpoint


@dataclass(frozen=True)
class Plan:
    runbook: Runbook
    mode: str
    steps: tuple[PlannedStep, ...]
    rollback: tuple[PlannedStep, ...]
    rto_path_budget_s: float | None  # sum of timeouts on the RTO path; None if unbounded
    unbounded_steps: tuple[str, ...]
    warnings: tuple[str, ...]
    groups: tuple[PlannedGroup, ...] = ()  # parallel groups, main steps then rollback
    isolation: tuple[PlannedStep, ...] = ()  # --isolated: the clone build (before T0) ...
    teardown: tuple[PlannedStep, ...] = ()  # ... and its removal (after everything)


@dataclass(frozen=True)
class PlannedGroup:
    """A parallel group: its members run at once, so it costs its longest member."""

    name: str
    phase: str  # main | rollback
    indexes: tuple[int, ...]
    budget_s: float | None  # the max of its members' budgets; None if one is unbounded


def _batch_budget(batch: tuple[Step, ...]) -> tuple[float | None, list[str]]:
    """(budget, names of unbounded members): one step's own, or a group's longest member."""
    costs = [_budget(s) for s in batch]
    unbounded = [s.name for s, c in zip(batch, costs, strict=True) if c is None]
    return (None if unbounded else max(c for c in costs if c is not None)), unbounded


def _groups(steps: tuple[Step, ...], phase: str) -> list[PlannedGroup]:
    return [PlannedGroup(str(b[0].group), phase, tuple(s.index for s in b),
                         _batch_budget(b)[0])
            for b in batches(steps) if b[0].group is not None]


def _hosts(runbook: Runbook, inventory: Inventory | None, step: Step) -> tuple[str, ...]:
    if step.role is None:
        return ()
    pattern = runbook.roles.get(step.role, step.role)
    return tuple(inventory.resolve(pattern)) if inventory is not None else (f"<{pattern}>",)


def _budget(step: Step) -> float | None:
    if step.kind is StepKind.PAUSE:
        return step.pause_s or 0.0
    if step.kind is StepKind.PROBE and step.probe is not None:
        return step.probe.timeout_s * (step.retries + 1)
    if step.timeout_s is None:
        return None
    return step.timeout_s * (step.retries + 1) + step.retry_delay_s * step.retries


def build_plan(runbook: Runbook, inventory: Inventory | None, mode: str,
               isolated: bool = False) -> Plan:
    """``isolated``: ``runbook`` as engine/isolation.isolated_runbook makes it; T0 is the
    end of the clone build, so every step after it is on the RTO path until restored."""
    steps = runbook.steps_for(mode)
    incident = mode == "incident"
    after_t0 = incident or isolated
    planned: list[PlannedStep] = []
    budget = 0.0
    unbounded: list[str] = []
    restored_seen = False
    for batch in batches(steps):  # a parallel group is on the path as one, at its max
        on_path = after_t0 and not restored_seen
        planned.extend(PlannedStep(s, _hosts(runbook, inventory, s), on_path) for s in batch)
        if on_path:
            cost, open_ended = _batch_budget(batch)
            unbounded.extend(open_ended)
            budget += cost or 0.0
        if any(s.disaster for s in batch):
            after_t0 = True
        if any(s.checkpoint == "service_restored" for s in batch) and after_t0:
            restored_seen = True
    warnings: list[str] = []
    rto = runbook.objectives.rto_s
    if budget > rto:
        warnings.append(f"the timeouts of the steps between T0 and service restored add up "
                        f"to {budget:g}s, more than the RTO objective of {rto:g}s")
    if unbounded:
        warnings.append("steps on the RTO path without a timeout: " + ", ".join(unbounded))
    if not incident and not isolated and runbook.disaster_step is None:
        warnings.append("no step is marked disaster: true, so T0 (and RTO) cannot be measured "
                        "in drill mode")
    rollback = tuple(PlannedStep(s, _hosts(runbook, inventory, s), False)
                     for s in runbook.rollback)
    iso = runbook.isolation if isolated else None
    build, teardown = (((), ()) if iso is None else
                       tuple(tuple(PlannedStep(s, _hosts(runbook, inventory, s), False)
                                   for s in part) for part in (iso.steps, iso.teardown)))
    return Plan(runbook, mode, tuple(planned), rollback, budget if not unbounded else None,
                tuple(unbounded), tuple(warnings),
                tuple(_groups(steps, "main") + _groups(runbook.rollback, "rollback")),
                build, teardown)
