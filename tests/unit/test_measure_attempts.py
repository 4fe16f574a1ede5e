"""T0 from the effect, outages, attempt-start stamps, "RPO not measured" and isolation of
failing observers (DESIGN.md "T0", "service probe", "Measurements")."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest

from drdrill.engine.background import CanaryWriter, ServiceMonitor
from drdrill.events import CallbackHandler, Clock, Event, EventBus
from drdrill.measure.metrics import compute_results, derive_t0
from drdrill.measure.verdict import decide
from drdrill.probes.base import CanaryWrite, ProbeResult


def ev(type_: str, mono: float, **data: Any) -> Event:
    return Event(type_, data, "2026-11-22T00:00:00.000Z", mono)


def attempts(start: float, end: float, ok: bool, step: float = 0.1) -> list[Event]:
    """Probe attempts stamped at their start, each lasting 0.02 s."""
    out, t = [], start
    while t < end - 1e-9:
        out.append(ev("probe", round(t, 3), ok=ok, started_mono=round(t, 3), duration_s=0.02))
        t += step
    return out


def drill(disaster_start: float, disaster_end: float, fail_from: float, back_at: float,
          extra: list[Event] | None = None) -> list[Event]:
    events = ([ev("step_started", 0.5, phase="main", index=1, name="crash")]
              + attempts(0, fail_from, True) + attempts(fail_from, back_at, False)
              + attempts(back_at, back_at + 1, True)
              + [ev("step_finished", disaster_end, phase="main", index=1, name="crash",
                    status="ok"),
                 ev("t0", disaster_end, source="disaster_step", step="crash"),
                 ev("step_started", disaster_end + 0.01, phase="main", index=2,
                    name="promote"),
                 ev("recovery_started", disaster_end + 0.01, index=2, name="promote"),
                 ev("step_finished", back_at - 0.1, phase="main", index=2, name="promote",
                    status="ok")] + (extra or []))
    assert disaster_start == 0.5
    return sorted(events, key=lambda e: e.mono)


def test_t0_is_disaster_step_end_when_nothing_earlier() -> None:
    r = compute_results(drill(0.5, 1.0, 1.05, 3.05), 10, 0)
    assert (r.t0_mono, r.t0_source) == (1.0, "disaster_step")
    assert r.rto_s == pytest.approx(2.05)
    assert r.downtime_s == pytest.approx(3.05 - 1.05)


def test_t0_is_first_failed_probe_start_of_a_slow_fault() -> None:
    # the server is gone at 0.8 but the step only ends at 3.0
    r = compute_results(drill(0.5, 3.0, 0.8, 4.0), 10, 0)
    assert (r.t0_mono, r.t0_source) == (0.8, "first_failed_probe")
    assert r.rto_s == pytest.approx(4.0 - 0.8)
    assert r.downtime_s == pytest.approx(4.0 - 0.8)


def test_t0_task_beats_the_probe_that_noticed_later() -> None:
    task = ev("checkpoint", 0.75, name="t0_task", t0=True, step="crash")
    r = compute_results(drill(0.5, 3.0, 0.8, 4.0, [task]), 10, 0)
    assert (r.t0_mono, r.t0_source) == (0.75, "t0_task")
    assert r.rto_s == pytest.approx(4.0 - 0.75)


def test_failure_before_the_disaster_step_began_is_not_t0() -> None:
    events = drill(0.5, 1.0, 1.2, 3.0) + [ev("probe", 0.3, ok=False, started_mono=0.3)]
    t0, source, began = derive_t0(sorted(events, key=lambda e: e.mono))
    assert (t0, source, began) == (1.0, "disaster_step", 0.5)


def test_declared_t0() -> None:
    events = [ev("t0", 0.0, source="declared")] + attempts(0, 1, False) + attempts(1, 2, True)
    r = compute_results(events, 10, 0)
    assert (r.t0_mono, r.t0_source, r.rto_s) == (0.0, "declared", 1.0)


def test_every_outage_with_the_step_running_when_it_began() -> None:
    events = drill(0.5, 1.0, 0.8, 3.0) + [
        ev("step_started", 5.0, phase="main", index=5, name="failback")] + [
        e for e in attempts(4.0, 8.0, True) if not 5.5 <= e.mono < 6.2] + attempts(
        5.5, 6.2, False)
    r = compute_results(sorted(events, key=lambda e: e.mono), 10, 0)
    assert [(o.start_s, o.end_s, o.step) for o in r.outages] == [
        (0.8, 3.0, "crash"), (5.5, 6.2, "failback")]
    assert r.outages[1].duration_s == pytest.approx(0.7)
    assert r.as_dict()["outages"][0]["duration_s"] == pytest.approx(2.2)


def test_an_outage_inside_a_parallel_group_names_the_group_and_every_member() -> None:
    """Members of one group run at once: the outage is the group's (any member may have
    caused it), not the latest-started member's."""
    group = "fence and promote"
    events = attempts(0, 4.0, True) + [
        e for e in attempts(4.0, 8.0, True) if not 5.5 <= e.mono < 6.5] + attempts(
        5.5, 6.5, False) + [
        ev("step_started", 5.0, phase="main", index=3, name="fence", group=group),
        ev("step_started", 5.01, phase="main", index=4, name="promote", group=group),
        ev("step_finished", 7.0, phase="main", index=4, name="promote", group=group,
           status="ok"),
        ev("step_finished", 7.5, phase="main", index=3, name="fence", group=group,
           status="ok"),
        ev("step_started", 7.6, phase="main", index=5, name="verify")]
    r = compute_results(sorted(events, key=lambda e: e.mono), 10, 0)
    assert [(o.start_s, o.step, o.steps) for o in r.outages] == [
        (5.5, group, ("fence", "promote"))]
    assert r.as_dict()["outages"][0]["steps"] == ("fence", "promote")


def test_an_outage_that_never_ends_has_no_end() -> None:
    r = compute_results(attempts(0, 1, True) + attempts(1, 2, False), 10, 0)
    assert len(r.outages) == 1 and r.outages[0].end_s is None
    assert r.outages[0].duration_s is None


def test_unreadable_canary_is_not_measured_and_fails_the_verdict() -> None:
    writes = [ev("canary_write", 0.1 * i, seq=i, acked=True, sent_mono=0.1 * i)
              for i in range(1, 6)]
    events = writes + [ev("canary_readback", 1.0, ok=False, present=[],
                          detail="read back failed: no writable node answered")]
    r = compute_results(events, 10, 10)
    assert r.lost_writes is None and r.rpo_s is None and r.rpo_met is None
    assert r.rpo_basis == "not_measured" and "no writable node" in str(r.rpo_reason)
    verdict = decide(r, [])
    assert verdict.status == "failed"
    assert verdict.reason is not None and "RPO not measured" in verdict.reason
    assert "lost" not in verdict.reason


def test_measured_rpo_basis_and_passing_verdict() -> None:
    events = [ev("canary_write", 0.1, seq=1, acked=True),
              ev("canary_readback", 1.0, ok=True, present=[1])]
    r = compute_results(events, 10, 0)
    assert (r.rpo_basis, r.lost_writes, r.rpo_met) == ("acknowledged_writes", 0, True)
    assert decide(r, []).status == "passed"
    assert decide(r, ["verify"]).reason == "step 'verify' failed"


def test_failing_handler_is_isolated_and_journaled_once() -> None:
    bus = EventBus(Clock())
    journal: list[Event] = []
    bus.subscribe(CallbackHandler(journal.append), critical=True)

    def broken(event: Event) -> None:
        raise RuntimeError("live view bug")

    bus.subscribe(CallbackHandler(broken))
    after: list[Event] = []
    bus.subscribe(CallbackHandler(after.append))
    for n in range(3):
        bus.emit("step_started", {"n": n})
    errors = [e for e in journal if e.type == "handler_error"]
    assert len(errors) == 1 and "live view bug" in errors[0].data["error"]
    assert [e.data["n"] for e in journal if e.type == "step_started"] == [0, 1, 2]
    assert len([e for e in after if e.type == "step_started"]) == 3  # later handlers too


def test_critical_handler_error_propagates() -> None:
    bus = EventBus(Clock())

    def journal_full(event: Event) -> None:
        raise OSError("disk full")

    bus.subscribe(CallbackHandler(journal_full), critical=True)
    with pytest.raises(OSError):
        bus.emit("x", {})


class _FlakyProbe:
    """Raises on its 2nd check, hangs 0.3 s on its 4th, passes otherwise."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self) -> ProbeResult:
        self.calls += 1
        if self.calls == 2:
            raise ValueError("boom")
        if self.calls == 4:
            time.sleep(0.3)
            return ProbeResult(False, "timeout")
        return ProbeResult(True, "ok")

    def close(self) -> None:
        return None


def _collect() -> tuple[Clock, list[tuple[str, dict[str, Any], float]], threading.Lock]:
    return Clock(), [], threading.Lock()


def test_probe_attempts_stamped_at_start_and_a_raising_check_does_not_end_the_stream(
) -> None:
    clock, seen, lock = _collect()

    def emit(batch: list[tuple[str, Any, float]]) -> None:
        with lock:
            seen.extend((type_, dict(data), at) for type_, data, at in batch)

    monitor = ServiceMonitor(_FlakyProbe(), 0.05, emit, clock.now)
    monitor.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len([s for s in seen if s[0] == "probe"]) < 6:
        time.sleep(0.02)
    monitor.stop()
    probes = [s for s in seen if s[0] == "probe"]
    assert len(probes) >= 6, "the stream ended after the raising check"
    assert not probes[1][1]["ok"] and "boom" in probes[1][1]["detail"]
    assert any(s[0] == "background_error" and "boom" in s[1]["error"] for s in seen)
    hung = probes[3]
    assert round(hung[2], 6) == hung[1]["started_mono"]  # the event's instant is the attempt start
    assert hung[1]["duration_s"] >= 0.3
    assert probes[4][2] - hung[2] >= 0.3  # the next attempt started after it ended


class _RaisingCanary:
    def setup(self) -> None:
        return None

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        if seq == 2:
            raise RuntimeError("driver bug")
        return CanaryWrite(seq, True)

    def read_back(self) -> set[int]:
        raise RuntimeError("store unreadable")

    def close(self) -> None:
        return None


def test_canary_write_that_raises_is_unacknowledged_and_readback_failure_is_reported(
) -> None:
    clock, seen, lock = _collect()

    def emit(batch: list[tuple[str, Any, float]]) -> None:
        with lock:
            seen.extend((type_, dict(data), at) for type_, data, at in batch)

    writer = CanaryWriter(_RaisingCanary(), 0.02, emit, clock.now)
    writer.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len([s for s in seen if s[0] == "canary_write"]) < 4:
        time.sleep(0.02)
    ok, present, detail = writer.read_back()
    writes = {s[1]["seq"]: s for s in seen if s[0] == "canary_write"}
    assert writes[2][1]["acked"] is False and writes[3][1]["acked"] is True
    assert round(writes[3][2], 6) == writes[3][1]["sent_mono"] and "duration_s" in writes[3][1]
    assert (ok, present) == (False, []) and "store unreadable" in detail


class _QuickProbe:
    def check(self) -> ProbeResult:
        return ProbeResult(True, "ok")

    def close(self) -> None:
        return None


def test_a_slow_journal_never_delays_the_next_sample() -> None:
    """The sampling grid is the instrument: with every journal write taking 3 intervals, the
    probe still samples every interval, and stop() drains every result into the stream."""
    clock, seen, lock = _collect()

    def slow_emit(batch: list[tuple[str, Any, float]]) -> None:
        time.sleep(0.15)
        with lock:
            seen.extend((type_, dict(data), at) for type_, data, at in batch)

    monitor = ServiceMonitor(_QuickProbe(), 0.05, slow_emit, clock.now)
    monitor.start()
    time.sleep(1.0)
    monitor.stop()
    starts = sorted(s[2] for s in seen if s[0] == "probe")
    assert len(starts) >= 12, len(starts)  # ~20 slots in 1 s; a blocked ticker gives <= 7
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert statistics.median(gaps) < 0.1, gaps  # the interval, not the journal's 0.15 s
