"""Notification decisions, message templates and the time split, from synthetic events."""

from __future__ import annotations

from typing import Any

import pytest

from drdrill.events import Event
from drdrill.measure.split import time_split
from drdrill.notify.message import PLACEHOLDERS, message_facts, render, template_problems
from drdrill.notify.texts import Classifier, wants

WALL0 = "2026-12-01T03:00:00.000Z"


def ev(type_: str, mono: float, **data: Any) -> Event:
    second = int(mono)
    wall = f"2026-12-01T03:00:{second:02d}.{int((mono - second) * 1000):03d}Z"
    return Event(type_, data, wall, mono)


STARTED = ev("run_started", 0.0, run_id="R1", runbook={"name": "pay"}, mode="incident",
             operator="bob", objectives={"rto_s": 300.0, "rpo_s": 0.0},
             description="payments", owner="sre", plan=[{"index": i} for i in (1, 2, 3)])


def test_every_placeholder_renders_and_unknown_ones_are_problems() -> None:
    template = " ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    assert template_problems(template) == []
    facts = message_facts([STARTED], 1.0, WALL0)
    assert "{" not in render(template, facts)
    assert template_problems("by {eta} and {run_id.x}")[0].startswith("unknown placeholder {eta}")
    assert len(template_problems("by {eta} and {run_id.x}")) == 2
    assert "not a valid message template" in template_problems("open {brace")[0]
    assert template_problems("{{literal}}") == []


def test_facts_before_and_after_t0() -> None:
    before = message_facts([STARTED], 1.0, WALL0)
    assert before["t0"] == "not yet" and before["expected_restoration"] == "n/a"
    assert before["scope"] == "payments — owner: sre" and before["progress"] == \
        "0 of 3 steps done"
    events = [STARTED, ev("t0", 2.0, source="declared"),
              ev("step_started", 3.0, index=1, name="fence", phase="main"),
              ev("step_finished", 4.0, index=1, name="fence", phase="main", status="ok"),
              ev("step_started", 5.0, index=2, name="promote", phase="main")]
    after = message_facts(events, 12.0, "2026-12-01T03:00:12.000Z")
    assert after["t0"] == "2026-12-01T03:00:02Z"
    assert after["expected_restoration"] == "2026-12-01T03:05:02Z"  # T0 + 300 s
    assert after["elapsed"] == "10.000s"
    assert after["progress"] == "1 of 3 steps done, now: promote"


def test_classifier_restored_only_once_recovery_began_and_missed_once() -> None:
    c = Classifier()
    names = lambda e: [n for n, _ in c.classify(e)]  # noqa: E731
    assert names(STARTED) == ["run_started"]
    assert names(ev("probe", 1.0, ok=True)) == []  # before T0: nothing to restore
    assert names(ev("t0", 2.0, source="declared")) == ["t0"]
    assert names(ev("probe", 3.0, ok=True)) == []  # recovery has not started
    assert names(ev("recovery_started", 3.5)) == []
    assert names(ev("probe", 303.0, ok=False)) == ["objective_missed"]
    assert names(ev("probe", 304.0, ok=False)) == []  # once
    assert names(ev("step_finished", 305.0, status="timeout", name="x")) == ["step_failed"]
    assert names(ev("probe", 306.0, ok=True)) == ["service_restored"]
    assert names(ev("probe", 307.0, ok=True)) == []
    finished = ev("run_finished", 308.0, status="failed",
                  reason="RTO objective missed; RPO objective missed")
    assert names(finished) == ["objective_missed", "run_finished"]  # RPO only: RTO was sent


def test_gate_waiting_subscribers_get_escalations() -> None:
    assert wants(("gate_waiting",), "manual_overdue")
    assert not wants(("run_finished",), "manual_overdue")
    assert wants((), "message")


def test_time_split_classifies_and_clips_to_t0_and_restoration() -> None:
    events = [
        ev("step_started", 0.0, index=1, kind="playbook", phase="main"),  # before T0: clipped
        ev("step_finished", 3.0, index=1, phase="main"),
        ev("t0", 2.0, source="disaster_step"),
        ev("gate_waiting", 3.0, index=2, what="gate before", phase="main"),
        ev("gate", 5.0, index=2, phase="main"),
        ev("step_started", 5.0, index=2, kind="playbook", phase="main"),
        ev("step_finished", 9.0, index=2, phase="main"),
        ev("step_started", 9.5, index=3, kind="manual", phase="main"),
        ev("step_finished", 12.5, index=3, phase="main"),
        ev("step_started", 12.5, index=4, kind="wait_for", phase="main"),
        ev("step_finished", 14.0, index=4, phase="main"),
        ev("step_started", 15.0, index=1, kind="playbook", phase="rollback"),  # ignored
        ev("step_finished", 16.0, index=1, phase="rollback"),
    ]
    split = time_split(events, 2.0, 14.0)
    assert split is not None
    assert split.automated_s == pytest.approx(1.0 + 4.0)
    assert split.human_s == pytest.approx(2.0 + 3.0)
    assert split.waiting_s == pytest.approx(12.0 - 5.0 - 5.0)
    assert time_split(events, None, 14.0) is None and time_split(events, 2.0, None) is None
