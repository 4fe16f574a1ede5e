"""RTO, RPO, lost writes and downtime — computed from journal events alone (DESIGN.md
"Measurements"), so every number can be recomputed by anyone holding the journal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from drdrill.events import Event


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

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lost_seqs"] = list(self.lost_seqs)
        return data


def _first(events: Sequence[Event], type_: str) -> Event | None:
    return next((e for e in events if e.type == type_), None)


def _service_restored(events: Sequence[Event], recovery_mono: float) -> float | None:
    for event in events:
        if event.type != "probe" or not event.data.get("ok"):
            continue
        started = float(event.data.get("started_mono", event.mono))
        if started >= recovery_mono:
            return event.mono
    return None


def _checkpoint(events: Sequence[Event], name: str) -> float | None:
    return next((e.mono for e in events
                 if e.type == "checkpoint" and e.data.get("name") == name), None)


def _failures(events: Sequence[Event], start: float, end: float | None) -> list[float]:
    return [e.mono for e in events if e.type == "probe" and not e.data.get("ok")
            and e.mono >= start and (end is None or e.mono <= end)]


def measure_rto(events: Sequence[Event]) -> tuple[float | None, ...]:
    """(t0, recovery_started, service_restored, last_failure, first_failure_after_t0)."""
    t0_event = _first(events, "t0")
    if t0_event is None:
        return None, None, None, None, None
    t0 = t0_event.mono
    recovery = _first(events, "recovery_started")
    recovery_mono = recovery.mono if recovery is not None else t0
    has_probe = any(e.type == "probe" for e in events)
    restored = (_service_restored(events, recovery_mono) if has_probe
                else _checkpoint(events, "service_restored"))
    failures = _failures(events, t0, restored)
    return (t0, recovery_mono, restored, failures[-1] if failures else None,
            failures[0] if failures else None)


def measure_rpo(events: Sequence[Event]) -> tuple[float | None, int | None, int, int, list[int]]:
    """(rpo_s, lost_writes, acked_writes, unknown_survived, lost seqs) from the canary."""
    writes = [e for e in events if e.type == "canary_write"]
    acked = {int(e.data["seq"]): e.mono for e in writes if e.data.get("acked")}
    unacked = {int(e.data["seq"]) for e in writes if not e.data.get("acked")}
    readback = next((e for e in reversed(events) if e.type == "canary_readback"), None)
    if readback is None or not readback.data.get("ok"):
        return None, None, len(acked), 0, []
    present = {int(s) for s in readback.data.get("present", [])}
    lost = sorted(seq for seq in acked if seq not in present)
    unknown_survived = len(unacked & present)
    if not lost:
        return 0.0, 0, len(acked), unknown_survived, []
    newest_lost = max(lost, key=lambda s: acked[s])
    lost_at = acked[newest_lost]
    survivors_before = [acked[s] for s in acked if s in present and acked[s] < lost_at]
    if survivors_before:
        since = max(survivors_before)
    else:
        since = min(float(e.data.get("sent_mono", e.mono)) for e in writes)
    return round(lost_at - since, 6), len(lost), len(acked), unknown_survived, lost


def compute_results(events: Sequence[Event], rto_objective: float,
                    rpo_objective: float) -> Results:
    t0, recovery, restored, last_failure, first_failure = measure_rto(events)
    rto = None if t0 is None or restored is None else round(restored - t0, 6)
    downtime = None
    if restored is not None:
        downtime = round(restored - first_failure, 6) if first_failure is not None else 0.0
    rpo, lost, acked, unknown, lost_seqs = measure_rpo(events)
    has_canary = any(e.type in ("canary_write", "canary_readback") for e in events)
    rto_met = None if t0 is None else (rto is not None and rto <= rto_objective)
    rpo_met = None if not has_canary else (rpo is not None and rpo <= rpo_objective)
    return Results(rto, rpo, lost, downtime, rto_met, rpo_met, acked, unknown, t0, recovery,
                   restored, last_failure, first_failure, tuple(lost_seqs))
