"""The incident RPO bound and the incident hand-off helpers, from hand-written events."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.engine.incident import DeferredSetupCanary, check_from_step
from drdrill.errors import BadInput
from drdrill.events import Event
from drdrill.measure.bound import rpo_bound_s
from drdrill.measure.metrics import compute_results
from drdrill.probes.base import CanaryWrite
from drdrill.runbook.loader import load_runbook

ROOT = Path(__file__).resolve().parents[2]


def _events(mode: str, replay: str | None, t0_wall: str = "2026-12-01T03:00:10.000Z"
            ) -> list[Event]:
    events = [Event("run_started", {"mode": mode}, "2026-12-01T03:00:20.000Z", 0.0),
              Event("t0", {"source": "declared"}, t0_wall, -10.0)]
    if replay is not None:
        events.append(Event("fact", {"name": "last_replay_ts", "value": replay},
                            "2026-12-01T03:00:25.000Z", 5.0))
    return events


def test_bound_is_t0_minus_the_last_replayed_commit() -> None:
    # 03:00:10 UTC on 2026-12-01 is epoch 1796094010
    bound, why = rpo_bound_s(_events("incident", "1796094007.250000"))
    assert (bound, why) == (2.75, None)


def test_incident_results_say_bound_never_measured() -> None:
    r = compute_results(_events("incident", "1796094007.25"), 15.0, 0.0)
    assert (r.rpo_basis, r.rpo_bound_s, r.rpo_s, r.rpo_met) == ("bound", 2.75, None, None)
    ok = compute_results(_events("incident", "1796094010.0"), 15.0, 0.0)
    assert (ok.rpo_bound_s, ok.rpo_met) == (0.0, True)  # a bound within the objective


def test_no_replayed_commit_is_not_measured_with_a_reason() -> None:
    r = compute_results(_events("incident", ""), 15.0, 0.0)
    assert r.rpo_basis == "not_measured" and r.rpo_bound_s is None
    assert "no replayed commit" in str(r.rpo_reason)
    canary = Event("canary_write", {"seq": 1, "acked": True}, "2026-12-01T03:00:21.000Z", 1.0)
    missing = compute_results([*_events("incident", None), canary], 15.0, 0.0)
    assert missing.rpo_basis == "not_measured" and "before promotion" in str(missing.rpo_reason)
    nothing = compute_results(_events("incident", None), 15.0, 0.0)
    assert nothing.rpo_basis is None  # neither a canary nor a bound: no RPO asked for


def test_drill_mode_is_left_alone() -> None:
    r = compute_results(_events("drill", "1796094007.25"), 15.0, 0.0)
    assert r.rpo_basis != "bound" and r.rpo_bound_s is None


def test_from_step_must_name_a_step_of_the_plan() -> None:
    runbook = load_runbook(ROOT / "drills" / "postgres-failover.yml")
    check_from_step(runbook, "incident", "promote the standby")
    with pytest.raises(BadInput) as caught:
        check_from_step(runbook, "incident", "promote the standbyy")
    assert "fence the old primary" in str(caught.value.hint)
    assert "crash the primary" not in str(caught.value.hint)  # drill-only: not in the plan
    with pytest.raises(BadInput):
        check_from_step(runbook, "drill", "promote the standby")


class _Store:
    def __init__(self) -> None:
        self.up = False
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1
        if not self.up:
            raise RuntimeError("connection refused")

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        return CanaryWrite(seq, True)

    def read_back(self) -> set[int]:
        return {2}

    def close(self) -> None:
        return None


def test_deferred_canary_counts_from_when_the_store_is_back() -> None:
    store = _Store()
    ready: list[bool] = []
    canary = DeferredSetupCanary(store, lambda: ready.append(True))
    first = canary.write(1, 0.0)
    assert not first.acked and "not ready" in first.detail and not ready
    with pytest.raises(RuntimeError):
        canary.read_back()
    store.up = True
    assert canary.write(2, 0.0).acked and ready == [True]
    assert canary.write(3, 0.0).acked and store.setups == 2  # set up once it worked
    assert canary.read_back() == {2}
