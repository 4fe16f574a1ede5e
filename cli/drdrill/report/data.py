"""A defensive, typed reading of ``record.json`` (and the journal events) for the renderers.

Records come from older or newer drdrill versions, from a crashed run, or from a hand-made
fixture: a missing or malformed key is shown as ``n/a`` and never raises. Every renderer
(html, markdown, junit, history) reads through this module so they all agree on what was
met, what was missed and what counts as a deviation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drdrill.events import Event
from drdrill.runbook.durations import format_duration

NA = "n/a"
Record = Mapping[str, Any]


def section(record: Record, key: str) -> Mapping[str, Any]:
    value = record.get(key) if isinstance(record, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def text(value: object) -> str:
    """A display string; ``None``/empty become ``n/a``."""
    if value is None or value == "" or value == [] or value == {}:
        return NA
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def secs(value: object) -> str:
    seconds = num(value)
    return NA if seconds is None else format_duration(seconds)


def met_word(met: bool | None) -> str:
    return NA if met is None else ("met" if met else "missed")


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _met(actual: float | None, target: float | None, given: object) -> bool | None:
    if isinstance(given, bool):
        return given
    if actual is None or target is None:
        return None
    return actual <= target


@dataclass(frozen=True)
class Verdict:
    status: str
    rto_s: float | None
    rto_target_s: float | None
    rto_met: bool | None
    rpo_s: float | None
    rpo_target_s: float | None
    rpo_met: bool | None
    lost_writes: int | None
    data_met: bool | None
    data_reasons: tuple[str, ...]
    downtime_s: float | None
    rpo_basis: str | None = None
    rpo_reason: str | None = None
    t0_source: str | None = None
    rpo_bound_s: float | None = None  # incident mode: an upper bound, never "measured"

    @property
    def rpo_measured(self) -> bool:
        """False when the canary store could not be read: no loss figure exists at all."""
        return self.rpo_basis != "not_measured"

    @property
    def met(self) -> bool | None:
        """All objectives and the data verification met; None when any is unknown."""
        flags = (self.rto_met, self.rpo_met, self.data_met)
        if any(flag is False for flag in flags):
            return False
        return None if any(flag is None for flag in flags) else True


def verdict(record: Record) -> Verdict:
    results, objectives = section(record, "results"), section(record, "objectives")
    rto, rto_target = num(results.get("rto_s")), num(objectives.get("rto_s"))
    rpo, rpo_target = num(results.get("rpo_s")), num(objectives.get("rpo_s"))
    lost_raw = num(results.get("lost_writes"))
    lost = None if lost_raw is None else int(lost_raw)
    data_met, reasons = data_verification(record, lost)
    return Verdict(
        status=text(record.get("status")), rto_s=rto, rto_target_s=rto_target,
        rto_met=_met(rto, rto_target, results.get("rto_met")), rpo_s=rpo,
        rpo_target_s=rpo_target, rpo_met=_met(rpo, rpo_target, results.get("rpo_met")),
        lost_writes=lost, data_met=data_met, data_reasons=tuple(reasons),
        downtime_s=num(results.get("downtime_s")),
        rpo_basis=_opt_text(results.get("rpo_basis")),
        rpo_reason=_opt_text(results.get("rpo_reason")),
        t0_source=_opt_text(results.get("t0_source")),
        rpo_bound_s=num(results.get("rpo_bound_s")),
    )


def _opt_text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def loss_phrase(v: Verdict) -> str:
    """What the reports say about lost writes; when RPO was not measured they say so and
    give no count (an unreadable store is not data loss: DESIGN.md)."""
    if v.rpo_basis == "bound":
        return (f"RPO bound (not measured): at most {secs(v.rpo_bound_s)} of commits may be "
                "lost (T0 minus the promoted standby's last replayed commit)")
    if not v.rpo_measured:
        return f"RPO not measured ({v.rpo_reason or 'canary read-back failed'})"
    return f"{text(v.lost_writes)} acknowledged write(s) lost"


@dataclass(frozen=True)
class OutageView:
    start_s: float | None
    end_s: float | None
    duration_s: float | None
    step: str


def outages(record: Record) -> list[OutageView]:
    """``results.outages``: every run of failed service-probe attempts."""
    raw = section(record, "results").get("outages")
    out: list[OutageView] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping):
            step = text(item.get("step"))
            if item.get("phase") == "rollback":
                step += " (rollback)"
            out.append(OutageView(num(item.get("start_s")), num(item.get("end_s")),
                                  num(item.get("duration_s")), step))
    return out


def data_verification(record: Record, lost: int | None) -> tuple[bool | None, list[str]]:
    """The record's verdict (``results.data_verified``: every ``verification: true`` step
    passed, or without such steps no acknowledged write lost), with the reasons it failed.
    Records without that field: missed when an acknowledged write was lost."""
    verdict = _flag(section(record, "results").get("data_verified"))
    if section(record, "results").get("rpo_basis") == "not_measured" and lost is None:
        reasons = [f"step {step.index} '{step.name}' {step.status}" for step in steps(record)
                   if step.verification and step.status not in ("ok", NA, "skipped")]
        return (False, reasons) if reasons else (verdict, [])
    reasons = [f"step {step.index} '{step.name}' {step.status}" for step in steps(record)
               if step.verification and step.status not in ("ok", NA, "skipped")]
    if verdict is None and not reasons:
        if lost:
            return False, [f"{lost} acknowledged write(s) lost"]
        return (True, []) if lost is not None else (None, [])
    if verdict is False and not reasons:
        reasons.append(f"{lost} acknowledged write(s) lost" if lost else
                       "data verification failed")
    return (not reasons and verdict is not False), reasons


@dataclass(frozen=True)
class StepView:
    index: int
    name: str
    kind: str
    phase: str
    hosts: tuple[str, ...]
    started_at: str
    finished_at: str
    start_s: float | None
    end_s: float | None
    duration_s: float | None
    status: str
    attempts: int | None
    error: str
    acknowledged_by: str
    verification: bool = False
    group: str = ""  # the parallel group it ran in ("" outside a group)

    @property
    def manual(self) -> bool:
        return self.kind == "manual"

    @property
    def mode_word(self) -> str:
        return "manual" if self.manual else "automated"


def steps(record: Record) -> list[StepView]:
    raw = record.get("steps") if isinstance(record, Mapping) else None
    out: list[StepView] = []
    for position, item in enumerate(raw if isinstance(raw, list) else [], start=1):
        if not isinstance(item, Mapping):
            continue
        hosts = item.get("hosts")
        manual = item.get("manual")
        ack = manual.get("acknowledged_by") if isinstance(manual, Mapping) else None
        if isinstance(manual, Mapping) and manual.get("auto") and not ack:
            ack = "auto"
        start, end = num(item.get("start_s")), num(item.get("end_s"))
        duration = num(item.get("duration_s"))
        if duration is None and start is not None and end is not None:
            duration = end - start
        if end is None and start is not None and duration is not None:
            end = start + duration
        if start is None and end is not None:  # skipped: never started, an instant
            start, duration = end - (duration or 0.0), duration or 0.0
        index = num(item.get("index"))
        attempts = num(item.get("attempts"))
        out.append(StepView(
            index=int(index) if index is not None else position,
            name=text(item.get("name")), kind=text(item.get("kind")),
            phase=str(item.get("phase") or "main"),
            hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else (),
            started_at=text(item.get("started_at")), finished_at=text(item.get("finished_at")),
            start_s=start, end_s=end, duration_s=duration, status=text(item.get("status")),
            attempts=int(attempts) if attempts is not None else None,
            error=str(item.get("error") or ""), acknowledged_by=text(ack),
            verification=bool(item.get("verification", False)),
            group=text(item.get("group")) if item.get("group") else "",
        ))
    return out


def deviations(record: Record) -> list[str]:
    """Human sentences: failed/retried/skipped steps, objectives and verification missed."""
    out: list[str] = []
    for step in steps(record):
        label = f"step {step.index} '{step.name}'"
        if step.phase != "main":
            label += f" ({step.phase})"
        if step.status not in ("ok", NA):
            detail = f": {step.error}" if step.error else ""
            out.append(f"{label} {step.status}{detail}")
        if step.attempts is not None and step.attempts > 1:
            out.append(f"{label} retried: {step.attempts} attempts")
    rollback = section(record, "rollback")
    if rollback:
        out.append(f"rollback ran ({rollback.get('reason')}): {rollback.get('status')} in "
                   f"{secs(num(rollback.get('duration_s')))}; disaster step start to rollback "
                   f"end {secs(num(rollback.get('from_disaster_s')))}")
    v = verdict(record)
    if v.rto_met is False:
        out.append(f"RTO objective missed: {secs(v.rto_s)} > {secs(v.rto_target_s)}")
    if v.rpo_met is False:
        out.append(f"RPO objective missed: {secs(v.rpo_s)} > {secs(v.rpo_target_s)}")
    if not v.rpo_measured:
        out.append(loss_phrase(v))
    if v.data_met is False:
        out.append("data verification missed: " + "; ".join(v.data_reasons))
    if v.status not in ("passed", NA):
        out.append(f"run status: {v.status}")
    return out


def mark(record: Record, key: str, checkpoint: str) -> float | None:
    """A monotonic offset from results (``t0_mono``…) or else from checkpoint offsets."""
    value = num(section(record, "results").get(key))
    if value is None:
        value = num(section(record, "checkpoint_offsets_s").get(checkpoint))
    return value


def probe_samples(record: Record, events: Sequence[Event]) -> list[tuple[float, bool]]:
    """(mono, ok) of every service probe result; the record's transitions if no journal."""
    samples = sorted((float(e.data.get("started_mono", e.mono)), bool(e.data.get("ok")))
                     for e in events if e.type == "probe")  # at attempt starts
    if samples:
        return samples
    raw = record.get("probe_transitions")
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping) and num(item.get("mono")) is not None:
            samples.append((float(item["mono"]), bool(item.get("ok"))))
    return samples


def lost_seqs(record: Record) -> set[int]:
    """Sequence numbers of acknowledged writes missing after recovery, wherever the record
    keeps them (``canary.lost_seqs``, ``canary.lost`` or ``results.lost_seqs``)."""
    canary, results = section(record, "canary"), section(record, "results")
    for raw in (canary.get("lost_seqs"), canary.get("lost"), results.get("lost_seqs")):
        if isinstance(raw, list):
            return {int(s) for s in raw if isinstance(s, int) and not isinstance(s, bool)}
    return set()


@dataclass(frozen=True)
class CanaryMark:
    mono: float
    seq: int
    state: str  # "acked", "failed" (no acknowledgment) or "lost" (acked, missing after)


def canary_marks(record: Record, events: Sequence[Event]) -> list[CanaryMark]:
    lost = lost_seqs(record)
    out: list[CanaryMark] = []
    for e in events:
        seq = num(e.data.get("seq")) if e.type == "canary_write" else None
        if seq is None:
            continue
        acked = bool(e.data.get("acked"))
        state = "lost" if acked and int(seq) in lost else ("acked" if acked else "failed")
        out.append(CanaryMark(e.mono, int(seq), state))
    return out


def environment(record: Record) -> list[tuple[str, str]]:
    runbook = section(record, "runbook")
    rows = [
        ("runbook", text(runbook.get("name"))),
        ("runbook path", text(runbook.get("path"))),
        ("runbook sha256", text(runbook.get("sha256"))),
        ("inventory sha256", text(record.get("inventory_sha256"))),
        ("drdrill version", text(record.get("drdrill_version"))),
        ("operator", text(record.get("operator"))),
        ("mode", text(record.get("mode"))),
    ]
    exercise = exercise_id(record)
    if exercise:
        rows.append(("exercise", exercise))
    return rows


def exercise_id(record: Record) -> str | None:
    exercise = record.get("exercise")
    if isinstance(exercise, Mapping) and exercise.get("id"):
        return str(exercise["id"])
    value = record.get("exercise_id")
    return str(value) if value else None


def description(record: Record, events: Sequence[Event]) -> str:
    """Runbook description from the record, else from the journal's run_started event."""
    desc = section(record, "runbook").get("description")
    if not desc:
        for e in events:
            if e.type == "run_started":
                rb = e.data.get("runbook")
                desc = rb.get("description") if isinstance(rb, Mapping) else None
                break
    return str(desc) if desc else NA


MEASURED_INSTANTS = (("T0", "t0_mono"), ("recovery started", "recovery_started_mono"),
                     ("first failure after T0", "first_failure_after_t0_mono"),
                     ("last failure", "last_failure_mono"),
                     ("service restored", "service_restored_mono"))


def instants(record: Record, events: Sequence[Event]) -> list[tuple[str, str, float | None]]:
    """(name, UTC wall, seconds from start) of the named checkpoints and the measured
    instants (T0, service restored…), in time order; wall from the journal event there."""
    walls_by_mono = {round(e.mono, 6): e.wall for e in events}
    walls = section(record, "checkpoints")
    offsets = section(record, "checkpoint_offsets_s")
    rows: list[tuple[str, str, float | None]] = [
        (str(name), text(walls.get(name)), num(offsets.get(name)))
        for name in dict.fromkeys([*walls, *offsets])]
    results = section(record, "results")
    for label, key in MEASURED_INSTANTS:
        mono = num(results.get(key))
        if mono is not None:
            rows.append((label, walls_by_mono.get(round(mono, 6), NA), mono))
    return sorted(rows, key=lambda r: (r[2] is None, r[2] or 0.0))
