"""``plan``'s forecast from history: how long each step took in earlier runs of the same
runbook and mode, and the RTO to expect, beside the sum-of-timeouts budget (which says only
what the timeouts allow, not what happens).

Runs counted: those under the runs directory whose record.json is readable, of the same
runbook name and mode, that completed (passed or failed: an aborted or errored run is not a
drill result, as in the history trend) — the newest ``LIMIT``, since the system under test
changes and old runs stop telling.

Two RTO figures, both shown and named for what they are:

- **measured RTO** — the median and the worst of those runs' own RTO (``results.rto_s``:
  service_restored − T0, as each record measured it). This is the prediction.
- **per-step sum** — the steps the plan puts on the RTO path (after the disaster step, up to
  the step marking ``service_restored``), each at its median (worst) past duration, a
  parallel group at its longest member. It shows where the time goes; it leaves out the
  time between steps and the probe's resolution, so it tends to sit a little below the
  measured figure. ``None`` while a path step has no history.

A step's duration is its record row's ``duration_s`` (first start to last end, retries
included) when the step ran to an outcome (ok, failed, timeout), not skipped or aborted.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from drdrill.engine.plan import Plan
from drdrill.report import data
from drdrill.report.history import collect_runs, counted
from drdrill.runbook.model import batches

LIMIT = 20
RAN = ("ok", "failed", "timeout")  # step statuses whose duration is a real duration


@dataclass(frozen=True)
class Spread:
    """What past runs took: their median, their worst, and how many runs that is."""

    median_s: float
    worst_s: float
    runs: int


@dataclass(frozen=True)
class Prediction:
    run_ids: tuple[str, ...]  # the counted past runs, newest first
    steps: Mapping[str, Spread]  # by step name (main phase)
    rto: Spread | None  # the past runs' measured RTO; None when none measured one
    path_sum: Spread | None  # per-step sum over the RTO path; None if a step lacks history
    path_missing: tuple[str, ...]  # RTO-path steps with no past duration
    objective_s: float

    @property
    def runs(self) -> int:
        return len(self.run_ids)


def spread(values: Sequence[float]) -> Spread | None:
    return Spread(statistics.median(values), max(values), len(values)) if values else None


def past_records(runs_dir: Path, runbook: str, mode: str,
                 limit: int = LIMIT) -> list[tuple[str, data.Record]]:
    """(run id, record) of the counted past runs of ``runbook`` in ``mode``, newest first."""
    runs = [(row.run_id, record) for row, record in collect_runs(runs_dir, runbook)
            if counted(row) and row.mode == mode]
    return runs[:limit]


def step_durations(records: Sequence[data.Record]) -> dict[str, list[float]]:
    """Per main-phase step name, its durations across ``records`` (one value per run)."""
    out: dict[str, list[float]] = {}
    for record in records:
        seen: dict[str, float] = {}
        for step in data.steps(record):
            if step.phase == "main" and step.status in RAN and step.duration_s is not None:
                seen[step.name] = step.duration_s  # a step recorded twice: its last row
        for name, duration in seen.items():
            out.setdefault(name, []).append(duration)
    return out


def measured_rto(records: Sequence[data.Record]) -> Spread | None:
    values = [v.rto_s for v in map(data.verdict, records) if v.rto_s is not None]
    return spread(values)


def path_sum(plan: Plan, steps: Mapping[str, Spread]) -> tuple[Spread | None, tuple[str, ...]]:
    """The RTO-path steps at their past median and worst (a parallel group at its longest
    member), and the path steps that have no history (then no sum)."""
    path = [p.step for p in plan.steps if p.on_rto_path]
    missing = tuple(s.name for s in path if s.name not in steps)
    if missing or not path:
        return None, missing
    median = sum(max(steps[s.name].median_s for s in b) for b in batches(path))
    worst = sum(max(steps[s.name].worst_s for s in b) for b in batches(path))
    return Spread(median, worst, min(steps[s.name].runs for s in path)), ()


def predict(plan: Plan, runs_dir: Path, limit: int = LIMIT) -> Prediction:
    runs = past_records(runs_dir, plan.runbook.name, plan.mode, limit)
    records = [record for _run_id, record in runs]
    steps = {name: s for name, values in step_durations(records).items()
             if (s := spread(values)) is not None}
    total, missing = path_sum(plan, steps)
    return Prediction(tuple(run_id for run_id, _ in runs), MappingProxyType(steps),
                      measured_rto(records), total, missing, plan.runbook.objectives.rto_s)


def verdict_words(prediction: Spread, objective_s: float) -> str:
    """How a predicted median/worst stands against the RTO objective."""
    if prediction.worst_s <= objective_s:
        return "within the objective"
    if prediction.median_s <= objective_s:
        return "median within, worst over the objective"
    return "over the objective"
