"""RTO, RPO, lost writes, downtime and outages — computed from journal events alone
(DESIGN.md "Measurements"), so every number can be recomputed by anyone holding the journal.

Probe and canary events are stamped at their attempt's *start* (``mono``; older journals
carry it as ``started_mono``): outages are bracketed by attempt starts, as an independent
client sees them. T0 is derived here, not taken from the loop's ``t0`` event, because the
fault's effect (a ``[t0]`` task, the first failed probe) can precede the step's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from drdrill.events import Event

ACKNOWLEDGED = "acknowledged_writes"
NOT_MEASURED = "not_measured"


@dataclass(frozen=True)
class Outage:
    """A maximal run of failed probe attempts: first failed start → next passing start
    (None while it never passed), with the step running when it began."""

    start_s: float
    end_s: float | None
    duration_s: float | None
    step: str | None  # a parallel group's name when the outage began inside the group
    phase: str | None
    steps: tuple[str, ...] = ()  # every step running when it began (a group's members)


@dataclass(frozen=True)
class Results:
    rto_s: float | None
    rpo_s: float | None
    lost_writes: int | None
    downtime_s: float | None
    rto_met: bool | None
    rpo_met: bool | None
    acked_writes: int
    unknown_survived: int
    t0_mono: float | None
    recovery_started_mono: float | None
    service_restored_mono: float | None
    last_failure_mono: float | None
    first_failure_after_t0_mono: float | None
    lost_seqs: tuple[int, ...] = ()
    t0_source: str | None = None
    outages: tuple[Outage, ...] = ()
    rpo_basis: str | None = None  # acknowledged_writes | bound | not_measured
    rpo_reason: str | None = None
    rpo_bound_s: float | None = None  # set by measure/bound.py (incident mode)
    disaster_started_mono: float | None = None
    rto_basis: str | None = None  # measured | bound (incident: restored before drdrill looked)
    rto_bound_s: float | None = None  # set by measure/bound.py (incident mode)
    rto_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lost_seqs"] = list(self.lost_seqs)
        data["outages"] = [asdict(o) for o in self.outages]
        return data


def attempt_start(event: Event) -> float:
    """When a probe/canary attempt started (its event's mono; ``started_mono`` if given)."""
    return float(event.data.get("started_mono", event.data.get("sent_mono", event.mono)))


def probe_attempts(events: Sequence[Event]) -> list[tuple[float, bool]]:
    """(start, ok) of every service-probe attempt, in start order."""
    return sorted((attempt_start(e), bool(e.data.get("ok")))
                  for e in events if e.type == "probe")


def _first(events: Sequence[Event], type_: str) -> Event | None:
    return next((e for e in events if e.type == type_), None)


def _checkpoint(events: Sequence[Event], name: str) -> float | None:
    return next((e.mono for e in events
                 if e.type == "checkpoint" and e.data.get("name") == name), None)


def disaster_began(events: Sequence[Event], t0_event: Event) -> float | None:
    """Start of the (last attempt of the) disaster step that the loop's t0 event names."""
    name = t0_event.data.get("step")
    starts = [e.mono for e in events if e.type == "step_started"
              and e.data.get("phase", "main") == "main" and e.data.get("name") == name
              and e.mono <= t0_event.mono]
    return starts[-1] if starts else None


def derive_t0(events: Sequence[Event]) -> tuple[float | None, str | None, float | None]:
    """(T0, t0_source, disaster step start): the earliest of the disaster step's end, its
    ``[t0]`` task's end and the first failed probe attempt's start after the step began."""
    t0_event = _first(events, "t0")
    if t0_event is None:
        return None, None, None
    if t0_event.data.get("source") in ("declared", "isolated_clone"):  # an instant, as is
        return t0_event.mono, str(t0_event.data.get("source")), None
    began = disaster_began(events, t0_event)
    candidates = [(t0_event.mono, 2, "disaster_step")]
    if began is not None:
        step = t0_event.data.get("step")
        task = next((e.mono for e in events if e.type == "checkpoint" and e.data.get("t0")
                     and e.data.get("step") == step and e.mono >= began), None)
        if task is not None:
            candidates.append((task, 0, "t0_task"))
        failed = next((start for start, ok in probe_attempts(events)
                       if not ok and start >= began), None)
        if failed is not None:
            candidates.append((failed, 1, "first_failed_probe"))
    t0, _, source = min(candidates)
    return t0, source, began


def _service_restored(attempts: list[tuple[float, bool]], after: float) -> float | None:
    return next((start for start, ok in attempts if ok and start >= after), None)


def _restored(attempts: list[tuple[float, bool]], since: float, recovery: float) -> float | None:
    """The first pass once recovery began — unless the service came back on its own before
    (a load balancer or Patroni faster than the disaster step's own end): then the start of
    the passing streak still in progress when recovery began, as a client saw it."""
    failed = [start for start, ok in attempts if not ok and since <= start < recovery]
    if not failed:
        return _service_restored(attempts, recovery)
    return next((start for start, ok in attempts if ok and start > failed[-1]), None)


def measure_rto(events: Sequence[Event]) -> tuple[float | None, ...]:
    """(t0, recovery_started, service_restored, last_failure, first_failure_after_t0)."""
    t0, _source, began = derive_t0(events)
    if t0 is None:
        return None, None, None, None, None
    recovery = _first(events, "recovery_started")
    recovery_mono = max(recovery.mono, t0) if recovery is not None else t0
    attempts = probe_attempts(events)
    since = t0 if began is None else min(began, t0)
    restored = (_restored(attempts, since, recovery_mono) if attempts
                else _checkpoint(events, "service_restored"))
    failures = [start for start, ok in attempts if not ok and start >= since
                and (restored is None or start <= restored)]
    return (t0, recovery_mono, restored, failures[-1] if failures else None,
            failures[0] if failures else None)


def _running_step(events: Sequence[Event], at: float
                  ) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(name, phase, names running) at ``at``: the latest started step whose end (if any)
    is not before ``at`` — or, when it is a member of a parallel group, the group, whose
    members all ran at once (naming the latest member alone would blame it for an outage
    any member may have caused) — and every step running then, in start order."""
    open_steps: dict[tuple[str, int], tuple[float, float | None, str, str | None]] = {}
    for e in events:
        if e.type not in ("step_started", "step_finished"):
            continue
        key = (str(e.data.get("phase", "main")), int(e.data.get("index", 0)))
        if e.type == "step_started":
            group = e.data.get("group")
            open_steps[key] = (e.mono, None, str(e.data.get("name")),
                               None if group is None else str(group))
        elif key in open_steps:
            start, _, name, group = open_steps[key]
            open_steps[key] = (start, e.mono, name, group)
    running = sorted(((start, key[0], name, group)
                      for key, (start, end, name, group) in open_steps.items()
                      if start <= at and (end is None or end >= at)),
                     key=lambda r: (r[0], r[1], r[2]))
    if not running:
        return None, None, ()
    _, phase, name, group = running[-1]
    return group or name, phase, tuple(r[2] for r in running)


def measure_outages(events: Sequence[Event]) -> tuple[Outage, ...]:
    """Every maximal run of failed probe attempts of the run, in time order."""
    outages: list[Outage] = []
    start: float | None = None
    for at, ok in probe_attempts(events):
        if not ok and start is None:
            start = at
        elif ok and start is not None:
            outages.append(_outage(events, start, at))
            start = None
    if start is not None:
        outages.append(_outage(events, start, None))
    return tuple(outages)


def _outage(events: Sequence[Event], start: float, end: float | None) -> Outage:
    step, phase, running = _running_step(events, start)
    duration = None if end is None else round(end - start, 6)
    return Outage(round(start, 6), None if end is None else round(end, 6), duration, step,
                  phase, running)


@dataclass(frozen=True)
class RpoMeasure:
    rpo_s: float | None
    lost_writes: int | None
    acked: int
    unknown_survived: int
    lost_seqs: tuple[int, ...]
    basis: str | None
    reason: str | None


def measure_rpo(events: Sequence[Event]) -> RpoMeasure:
    """RPO from the canary's acknowledged writes and its read-back; not measured (nulls with
    the reason) when the read-back failed or never happened — never "everything lost"."""
    writes = [e for e in events if e.type == "canary_write"]
    acked = {int(e.data["seq"]): attempt_start(e) for e in writes if e.data.get("acked")}
    unacked = {int(e.data["seq"]) for e in writes if not e.data.get("acked")}
    readback = next((e for e in reversed(events) if e.type == "canary_readback"), None)
    if readback is None or not readback.data.get("ok"):
        if not writes and readback is None:
            return RpoMeasure(None, None, 0, 0, (), None, None)
        reason = ("no canary read-back in the journal" if readback is None
                  else str(readback.data.get("detail") or "canary read-back failed"))
        return RpoMeasure(None, None, len(acked), 0, (), NOT_MEASURED, reason)
    present = {int(s) for s in readback.data.get("present", [])}
    lost = sorted(seq for seq in acked if seq not in present)
    unknown_survived = len(unacked & present)
    if not lost:
        return RpoMeasure(0.0, 0, len(acked), unknown_survived, (), ACKNOWLEDGED, None)
    newest_lost = max(lost, key=lambda s: acked[s])
    lost_at = acked[newest_lost]
    survivors_before = [acked[s] for s in acked if s in present and acked[s] < lost_at]
    since = max(survivors_before) if survivors_before else min(
        attempt_start(e) for e in writes)
    return RpoMeasure(round(lost_at - since, 6), len(lost), len(acked), unknown_survived,
                      tuple(lost), ACKNOWLEDGED, None)


def _up_before(events: Sequence[Event], began: float | None, t0: float | None) -> bool:
    """The service probe passed before the disaster step began (so it watched the fault;
    never true for a declared T0 before the run, when nobody watched)."""
    since = began if began is not None else t0
    return since is not None and any(ok and start <= since for start, ok in probe_attempts(events))


def compute_results(events: Sequence[Event], rto_objective: float,
                    rpo_objective: float) -> Results:
    t0, recovery, restored, last_failure, first_failure = measure_rto(events)
    _, t0_source, began = derive_t0(events)
    rto = None if t0 is None or restored is None else round(restored - t0, 6)
    if rto is not None and first_failure is None and _up_before(events, began, t0):
        rto = 0.0  # seen up before the fault, never failed from it on: no outage, RTO 0
    downtime = None
    if restored is not None:
        downtime = round(restored - first_failure, 6) if first_failure is not None else 0.0
    rpo = measure_rpo(events)
    rto_met = None if t0 is None else (rto is not None and rto <= rto_objective)
    rpo_met = None if rpo.rpo_s is None else rpo.rpo_s <= rpo_objective
    results = Results(rto, rpo.rpo_s, rpo.lost_writes, downtime, rto_met, rpo_met, rpo.acked,
                      rpo.unknown_survived, t0, recovery, restored, last_failure,
                      first_failure, rpo.lost_seqs, t0_source=t0_source,
                      outages=measure_outages(events), rpo_basis=rpo.basis,
                      rpo_reason=rpo.reason, disaster_started_mono=began)
    if rto is not None:
        results = replace(results, rto_basis="measured")
    from drdrill.measure.bound import apply_bound, apply_rto_bound  # incident; imports Results
    from drdrill.measure.isolation import apply_clone_lag  # run --isolated

    results = apply_rto_bound(results, events, rto_objective)
    return apply_clone_lag(apply_bound(results, events, rpo_objective), events, rpo_objective)
