"""Notifications and timed human steps, end to end through ``run_drill`` against a real
local HTTP server (tests/harness/webhook.py) that accepts, delays and drops requests.

The service is a flag file checked by a ``command`` probe every 100 ms; the disaster removes
it and a later step re-creates it, so runs take a couple of seconds and need no lab.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from drdrill.engine.context import Acknowledgment
from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.events import Event
from drdrill.journal.store import read_events
from drdrill.runbook.model import Step
from harness.webhook import Webhook

pytestmark = pytest.mark.integration
INTERVAL_S = 0.1
ALL_EVENTS = ("[run_started, t0, gate_waiting, step_failed, service_restored, "
              "objective_missed, run_finished]")
TOKEN = "s3cret-hook-token"

HEAD = """version: 1
name: notify-webhook
description: flag-file service for notification tests
owner: dr-team@example.test
objectives: {rto: 20s, rpo: 5s}
secrets: [hook_token]
service:
  interval: 100ms
  probe: {type: command, argv: [test, -f, up], timeout: 1s}
canary:
  type: command
  interval: 100ms
  setup: [touch, up, store.log]
  write: [sh, -c, 'test -f up && echo "$DRDRILL_SEQ" >> store.log']
  read: [cat, store.log]
"""
STEPS = """steps:
  - name: disaster
    probe: {type: command, argv: [rm, -f, up]}
    disaster: true
  - name: tell customers
    notify:
      message: "%(message)s"
%(middle)s
  - name: restore
    probe: {type: command, argv: [touch, up]}
  - name: service back
    wait_for: {type: command, argv: [test, -f, up]}
    interval: 100ms
    timeout: 10s
  - name: afterwards
    pause: 200ms
"""
MESSAGE = ("Incident in {runbook} (run {run_id}) since {t0}; scope: {scope}; "
           "expected restoration {expected_restoration}; progress: {progress}")
PAUSE = """  - name: recover
    pause: 1s"""


def _runbook(tmp_path: Path, targets: list[str], middle: str = PAUSE) -> Path:
    notify = ("notify:\n" + "".join(targets)) if targets else ""
    path = tmp_path / "drills" / "notify-webhook.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + notify + STEPS % {"middle": middle, "message": MESSAGE})
    return path


def _target(name: str, url: str, events: str = ALL_EVENTS, extra: str = "") -> str:
    return (f"  - name: {name}\n    url: {url}\n    events: {events}\n"
            f"    headers_secret: hook_token\n{extra}")


def _run(runbook: Path, inventory: Path, tmp_path: Path,
         interaction: Any = None) -> tuple[RunResult, list[Event]]:
    result = run_drill(RunOptions(runbook, inventory, yes=interaction is None,
                                  extra_vars={"hook_token": TOKEN},
                                  runs_dir=tmp_path / "runs"), interaction=interaction)
    return result, read_events(result.run_dir / "journal.jsonl")


def _outcomes(events: list[Event], target: str) -> dict[int, list[str]]:
    """delivery id -> the notify_* event types journaled for it, in order."""
    out: dict[int, list[str]] = {}
    for e in events:
        if e.type.startswith("notify_") and e.data.get("target") == target:
            out.setdefault(int(e.data["delivery"]), []).append(e.type)
    return out


def test_every_subscribed_event_delivered_or_its_failure_journaled(
        local_inventory: Path, tmp_path: Path) -> None:
    with Webhook(delay_s=3.0) as hook:
        runbook = _runbook(tmp_path, [
            _target("ok", f"{hook.base}/ok", extra="    format: json\n"),
            _target("slack", f"{hook.base}/ok?slack", extra="    format: slack\n"),
            _target("slow", f"{hook.base}/slow", extra="    timeout: 1s\n"),
            _target("dead", f"{hook.base}/drop", extra="    retries: 2\n")])
        result, events = _run(runbook, local_inventory, tmp_path)
        received_ok = [r.body for r in hook.on("/ok")]
        received_slack = [r.body for r in hook.on("/ok?slack")]
        dropped = hook.on("/drop")
        auth = {r.authorization for r in hook.received}
    assert result.status == "passed", result.record.get("reason")
    # the accepting target: what arrived is exactly what the journal says was sent
    sent = [e.data["event"] for e in events
            if e.type == "notify_sent" and e.data["target"] == "ok"]
    assert Counter(b["event"] for b in received_ok) == Counter(sent)
    assert {"run_started", "t0", "message", "service_restored", "run_finished"} <= set(sent)
    assert "step_failed" not in sent and "objective_missed" not in sent
    message = next(b for b in received_ok if b["event"] == "message")
    assert result.run_id in message["text"] and "expected restoration 20" in message["text"]
    assert "dr-team@example.test" in message["text"]
    assert "1 of 6 steps done, now: tell customers" in message["text"]
    assert all(set(b) == {"text"} for b in received_slack) and len(received_slack) == len(sent)
    # every delivery of every target ends exactly once: sent, or given up
    for target in ("ok", "slack", "slow", "dead"):
        outcomes = _outcomes(events, target)
        assert len(outcomes) == len(sent), (target, outcomes)
        for trail in outcomes.values():
            ends = [t for t in trail if t in ("notify_sent", "notify_gave_up")]
            assert len(ends) == 1, (target, trail)
    dead = _outcomes(events, "dead")
    assert all("notify_sent" not in t and "notify_failed" in t for t in dead.values())
    failed = sum(t.count("notify_failed") for t in dead.values())
    assert failed <= len(dropped) <= failed + 1  # + the attempt in flight when the run ended
    slow = [e for e in events if e.type == "notify_failed" and e.data["target"] == "slow"]
    assert slow and all("timed out" in str(e.data["error"]) for e in slow)
    # the bearer token went out, and was never written down
    assert auth == {f"Bearer {TOKEN}"}
    for name in ("journal.jsonl", "record.json"):
        assert TOKEN not in (result.run_dir / name).read_text()
    finished = next(i for i, e in enumerate(events) if e.type == "run_finished")
    assert all(e.type.startswith("notify_") for e in events[finished + 1:])


def _restore_after_t0(result: RunResult, type_: str) -> float:
    """Seconds from T0 to the start or end of the step that re-created the flag file."""
    events = read_events(result.run_dir / "journal.jsonl")
    t0 = next(e.mono for e in events if e.type == "t0")
    return next(e.mono for e in events
                if e.type == type_ and e.data["name"] == "restore") - t0


def _sampling_gap(result: RunResult, after_t0: float) -> float:
    """How long after ``after_t0`` the probe could next start: one interval, or the attempt
    in flight then if it ran longer (attempts never overlap)."""
    events = read_events(result.run_dir / "journal.jsonl")
    t0 = next(e.mono for e in events if e.type == "t0")
    before = [e for e in events if e.type == "probe" and e.mono - t0 <= after_t0]
    in_flight = float(before[-1].data["duration_s"]) if before else 0.0
    return max(INTERVAL_S, in_flight)


def test_step_timings_unchanged_by_a_slow_or_dead_webhook(local_inventory: Path,
                                                          tmp_path: Path) -> None:
    quiet, _ = _run(_runbook(tmp_path / "a", []), local_inventory, tmp_path / "a")
    with Webhook(delay_s=3.0) as hook:
        noisy, events = _run(_runbook(tmp_path / "b", [
            _target("slow", f"{hook.base}/slow"), _target("dead", f"{hook.base}/drop")]),
            local_inventory, tmp_path / "b")
    assert quiet.status == noisy.status == "passed"
    assert any(e.type == "notify_gave_up" for e in events)  # the webhooks really hurt
    before = {s["name"]: s["duration_s"] for s in quiet.record["steps"]}
    after = {s["name"]: s["duration_s"] for s in noisy.record["steps"]}
    assert before.keys() == after.keys()
    for name, duration in before.items():
        assert abs(after[name] - duration) <= 2 * INTERVAL_S, (name, duration, after[name])
    # the recovery itself was not delayed: the service came back (the restore step's touch)
    # as long after T0 in both runs; and in each run the measured RTO is that instant, read
    # by the next probe sample (at most one interval later). Comparing the two RTOs directly
    # would add each run's probe phase (0..1 interval) to the difference.
    restored_a, restored_b = (_restore_after_t0(r, "step_finished") for r in (quiet, noisy))
    assert abs(restored_a - restored_b) <= 2 * INTERVAL_S, (restored_a, restored_b)
    for result, restored in ((quiet, restored_a), (noisy, restored_b)):
        rto, touching = result.record["results"]["rto_s"], _restore_after_t0(result,
                                                                              "step_started")
        assert touching <= rto <= restored + _sampling_gap(result, restored) + 0.05, (
            rto, touching, restored)
    # no targets: the notify step's message is journaled as what would have been sent
    message = next(e for e in read_events(quiet.run_dir / "journal.jsonl")
                   if e.type == "notify_message")
    assert message.data["targets"] == [] and "not sent" in message.data["delivery"]
    assert quiet.run_id in message.data["message"]


class Person:
    """A scripted person: answers manual steps with ``choice`` after ``after_s``, or never
    (waits out the step's timeout, as someone away from the keyboard)."""

    def __init__(self, choice: str | None, after_s: float = 0.0, comment: str = "") -> None:
        self.choice, self.after_s, self.comment = choice, after_s, comment

    def acknowledge(self, step: Step, timeout_s: float | None) -> Acknowledgment:
        if self.choice is None:
            threading.Event().wait(timeout_s or 0.0)
            return Acknowledgment("timeout", "alice")
        threading.Event().wait(self.after_s)
        return Acknowledgment(self.choice, "alice", comment=self.comment)

    def gate(self, step: Step) -> tuple[bool, str]:
        return True, "alice"


MANUAL = """  - name: switch DNS by hand
    manual: "Point app.example.test at the standby"
    owner: network on-call
    expected: 500ms
    timeout: 1s
    on_failure: %s"""


@pytest.mark.parametrize("policy", ["continue", "abort"])
def test_manual_timeout_escalates_then_follows_on_failure(local_inventory: Path,
                                                          tmp_path: Path, policy: str) -> None:
    with Webhook() as hook:
        runbook = _runbook(tmp_path, [_target("oncall", f"{hook.base}/ok",
                                              events="[gate_waiting]")], MANUAL % policy)
        result, events = _run(runbook, local_inventory, tmp_path, Person(None))
        got = [r.body for r in hook.on("/ok") if r.body["event"] != "message"]
    overdue = [e for e in events if e.type == "manual_overdue"]
    assert len(overdue) == 1 and overdue[0].data["owner"] == "network on-call"
    assert overdue[0].data["waited_s"] >= 1.0
    assert [b["event"] for b in got] == ["gate_waiting", "manual_overdue"]
    assert "ESCALATION" in got[1]["text"] and "network on-call" in got[1]["text"]
    steps = {s["name"]: s for s in result.record["steps"]}
    assert steps["switch DNS by hand"]["status"] == "timeout"
    if policy == "continue":
        assert steps["restore"]["status"] == "ok" and result.status == "failed"
        assert result.exit_code == 1
    else:
        assert "restore" not in steps and result.status == "aborted"
        assert result.exit_code == 3


def test_acknowledgment_records_who_when_comment_and_time_split(local_inventory: Path,
                                                                tmp_path: Path) -> None:
    runbook = _runbook(tmp_path, [], MANUAL % "abort")
    result, events = _run(runbook, local_inventory, tmp_path,
                          Person("done", after_s=0.6, comment="done via the registrar UI"))
    assert result.status == "passed", result.record.get("reason")
    step = next(s for s in result.record["steps"] if s["name"] == "switch DNS by hand")
    manual = step["manual"]
    assert manual["acknowledged_by"] == "alice" and manual["choice"] == "done"
    assert manual["comment"] == "done via the registrar UI" and manual["auto"] is False
    assert manual["acknowledged_at"] <= step["finished_at"]
    split = result.record["results"]["time_split"]
    rto = result.record["results"]["rto_s"]
    assert split["human_s"] == pytest.approx(step["duration_s"], abs=0.01)
    assert 0.6 <= split["human_s"] <= 0.6 + 2 * INTERVAL_S
    assert sum(split.values()) == pytest.approx(rto, abs=0.001)
    assert split["automated_s"] < split["human_s"]  # two tiny probe steps and a notify
    assert (result.run_dir / "report.md").read_text().count("human steps") == 1
    assert json.loads((result.run_dir / "record.json").read_text())["results"][
        "time_split"] == split
    assert [e.data["what"] for e in events if e.type == "gate_waiting"] == ["manual step"]


def test_skip_is_recorded_and_the_run_goes_on_but_cannot_pass(local_inventory: Path,
                                                              tmp_path: Path) -> None:
    runbook = _runbook(tmp_path, [], MANUAL % "abort")
    result, _ = _run(runbook, local_inventory, tmp_path, Person("skip", comment="no access"))
    steps = {s["name"]: s for s in result.record["steps"]}
    assert steps["switch DNS by hand"]["status"] == "skipped"
    assert "no access" in steps["switch DNS by hand"]["error"]
    assert steps["restore"]["status"] == "ok"
    assert result.status == "failed" and result.exit_code == 1
