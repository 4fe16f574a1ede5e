"""RTO/RPO/downtime definitions of DESIGN.md, on hand-made event streams."""

from __future__ import annotations

from typing import Any

from drdrill.events import Event
from drdrill.measure.metrics import compute_results


def ev(type_: str, mono: float, **data: Any) -> Event:
    return Event(type_, data, "2026-11-22T00:00:00.000Z", mono)


def probes(start: float, end: float, ok: bool, step: float = 0.1) -> list[Event]:
    out, t = [], start
    while t < end - 1e-9:
        out.append(ev("probe", round(t + 0.01, 3), ok=ok, started_mono=round(t, 3)))
        t += step
    return out


def test_rto_is_first_pass_after_recovery_began_minus_t0() -> None:
    events = (probes(0, 2, True) + [ev("t0", 2.05, source="disaster_step")]
              + [ev("recovery_started", 2.06)] + probes(2.1, 5, False) + probes(5, 6, True))
    r = compute_results(sorted(events, key=lambda e: e.mono), rto_objective=3.5,
                        rpo_objective=0)
    assert r.t0_mono == 2.05 and r.t0_source == "disaster_step"
    # instants are attempt STARTS (DESIGN.md "service probe"), not when attempts ended
    assert r.service_restored_mono == 5.0
    assert r.rto_s == round(5.0 - 2.05, 6)
    assert r.rto_met is True
    assert r.first_failure_after_t0_mono == 2.1
    assert r.downtime_s == round(5.0 - 2.1, 6)
    assert r.last_failure_mono is not None and r.last_failure_mono < 5.0


def test_probe_started_before_recovery_does_not_count() -> None:
    # a pass that *started* before the recovery began (in flight across T0) is not a restore
    events = [ev("t0", 1.0), ev("recovery_started", 1.0),
              ev("probe", 1.05, ok=True, started_mono=0.95),
              ev("probe", 1.2, ok=False, started_mono=1.1),
              ev("probe", 1.5, ok=True, started_mono=1.4)]
    r = compute_results(events, 10, 0)
    assert r.service_restored_mono == 1.4  # the passing attempt's start


def test_no_restore_means_rto_missed() -> None:
    events = [ev("t0", 1.0), ev("recovery_started", 1.0)] + probes(1.0, 3.0, False)
    r = compute_results(events, 10, 0)
    assert r.rto_s is None and r.rto_met is False


def _writes(seqs: range, t0: float, step: float) -> list[Event]:
    return [ev("canary_write", t0 + i * step, seq=s, acked=True, sent_mono=t0 + i * step - 0.01)
            for i, s in enumerate(seqs)]


def test_rpo_is_newest_lost_minus_newest_survivor_before_it() -> None:
    writes = _writes(range(1, 31), 0.1, 0.1)  # seq n acked at 0.1 * n
    lost = {18, 19, 20}  # acknowledged but missing after recovery
    present = [s for s in range(1, 31) if s not in lost]  # later writes survived
    events = writes + [ev("canary_readback", 3.5, ok=True, present=present)]
    r = compute_results(events, 0, 0.25)
    assert r.lost_writes == 3
    assert r.rpo_s == round(2.0 - 1.7, 6)  # seq 20 at 2.0, newest survivor before it: 17
    assert r.rpo_met is False
    assert r.lost_seqs == (18, 19, 20)


def test_unacknowledged_writes_that_survived_are_counted_separately() -> None:
    events = _writes(range(1, 4), 0.1, 0.1) + [
        ev("canary_write", 0.5, seq=4, acked=False, sent_mono=0.45),
        ev("canary_readback", 1.0, ok=True, present=[1, 2, 3, 4])]
    r = compute_results(events, 0, 0)
    assert r.lost_writes == 0 and r.rpo_s == 0.0 and r.unknown_survived == 1
    assert r.rpo_met is True


def test_failed_readback_is_not_zero_loss() -> None:
    events = _writes(range(1, 4), 0.1, 0.1) + [ev("canary_readback", 1.0, ok=False,
                                                   present=[])]
    r = compute_results(events, 0, 10)
    # not a loss and not a pass: "not measured", which the verdict turns into a failure
    assert r.lost_writes is None and r.rpo_s is None and r.rpo_met is None
    assert r.rpo_basis == "not_measured" and r.rpo_reason
