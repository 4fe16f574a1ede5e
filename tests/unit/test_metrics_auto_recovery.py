"""Service restored before the recovery steps began (a load balancer or Patroni recovering
on its own while the disaster step's process is still ending), and "no outage" = RTO 0."""

from __future__ import annotations

from typing import Any

from drdrill.events import Event
from drdrill.measure.metrics import compute_results


def ev(type_: str, mono: float, **data: Any) -> Event:
    return Event(type_, data, "2026-12-02T00:00:00.000Z", mono)


def probes(start: float, end: float, ok: bool, step: float = 0.1) -> list[Event]:
    out, t = [], start
    while t < end - 1e-9:
        out.append(ev("probe", round(t + 0.01, 3), ok=ok, started_mono=round(t, 3)))
        t += step
    return out


def _disaster(began: float, ended: float, recovery: float) -> list[Event]:
    return [ev("step_started", began, name="kill", index=1, phase="main"),
            ev("step_finished", ended, name="kill", index=1, phase="main", status="ok"),
            ev("t0", ended, source="disaster_step", step="kill"),
            ev("recovery_started", recovery, index=2, name="wait")]


def _results(events: list[Event]) -> Any:
    return compute_results(sorted(events, key=lambda e: e.mono), 10, 0)


def test_restored_during_the_disaster_step_counts_from_the_pass() -> None:
    # fault at 1.0, the balancer moves clients at 2.0, the step's process ends at 5.0
    events = (probes(0, 1, True) + probes(1, 2, False) + probes(2, 7, True)
              + _disaster(0.5, 5.0, 5.1))
    r = _results(events)
    assert r.t0_source == "first_failed_probe" and r.t0_mono == 1.0
    assert r.service_restored_mono == 2.0  # not 5.1: clients were served again from 2.0
    assert r.rto_s == 1.0 and r.downtime_s == 1.0


def test_a_blip_then_an_outage_into_recovery_is_not_restored_by_the_blip() -> None:
    events = (probes(0, 1, True) + probes(1, 1.2, False) + probes(1.2, 2, True)
              + probes(2, 6, False) + probes(6, 7, True) + _disaster(0.5, 3.0, 3.1))
    r = _results(events)
    assert r.service_restored_mono == 6.0
    assert r.rto_s == 5.0


def test_no_failed_probe_from_the_fault_on_is_rto_zero() -> None:
    events = probes(0, 7, True) + _disaster(0.5, 3.0, 3.1)
    r = _results(events)
    assert r.rto_s == 0.0 and r.downtime_s == 0.0 and r.outages == ()
    assert r.rto_met is True


def test_declared_t0_before_anyone_watched_is_not_rto_zero() -> None:
    # incident mode: T0 declared before the run; the probe only ever saw the service up
    events = [ev("t0", -30.0, source="declared"), ev("recovery_started", 0.1)] + probes(0, 3, True)
    r = _results(events)
    assert r.rto_s is not None and r.rto_s > 30.0
