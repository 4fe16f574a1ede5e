"""The incident RTO bound (measure/bound.py apply_rto_bound), from hand-written events: a
service that already answered drdrill's first probe was restored before anyone watched, so
its RTO is a bound, never a measured number; one seen down first is measured as usual."""

from __future__ import annotations

from drdrill.events import Event
from drdrill.measure.metrics import compute_results
from drdrill.measure.verdict import decide


def _run(mode: str, probes: list[tuple[float, bool]]) -> list[Event]:
    events = [Event("run_started", {"mode": mode}, "2026-12-01T03:00:20.000Z", 0.0),
              Event("t0", {"source": "declared", "step": None}, "2026-12-01T03:00:15.000Z",
                    -5.0),
              Event("recovery_started", {"index": 1, "name": "x"}, "2026-12-01T03:00:20.100Z",
                    0.1)]
    events += [Event("probe", {"ok": ok}, "2026-12-01T03:00:20.000Z", at) for at, ok in probes]
    return events


def test_up_at_the_first_probe_is_a_bound() -> None:
    r = compute_results(_run("incident", [(0.2, True), (0.3, True)]), 10.0, 0.0)
    assert (r.rto_s, r.rto_basis, r.rto_bound_s, r.rto_met) == (None, "bound", 5.2, True)
    assert r.downtime_s is None and "upper bound" in str(r.rto_reason)
    assert decide(r, []).status == "passed"


def test_a_bound_above_the_objective_proves_nothing() -> None:
    r = compute_results(_run("incident", [(0.2, True)]), 3.0, 0.0)
    assert (r.rto_basis, r.rto_met) == ("bound", None)
    assert any("RTO not measured (incident)" in x for x in decide(r, []).reasons)


def test_down_at_the_first_probe_is_measured_from_the_declared_instant() -> None:
    r = compute_results(_run("incident", [(0.2, False), (0.3, False), (0.4, True)]), 10.0, 0.0)
    assert (r.rto_s, r.rto_basis, r.rto_bound_s, r.rto_met) == (5.4, "measured", None, True)


def test_drill_mode_is_left_alone() -> None:
    events = _run("drill", [(0.2, True)])
    events[1] = Event("t0", {"source": "disaster_step", "step": "x"},
                      "2026-12-01T03:00:20.050Z", 0.05)
    r = compute_results(events, 10.0, 0.0)
    assert r.rto_basis != "bound" and r.rto_bound_s is None
