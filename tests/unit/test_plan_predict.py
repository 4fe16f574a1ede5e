"""`plan` predicts RTO from history (issue 11.5): earlier runs' journals and records are
written by the real JournalWriter and build_record (tests/fixtures/make_fixture_run.py);
the expected figures are worked out here from the fixture's own parameters (RTO =
service restored − 12 s; promotion = 8.5 s + the delay that moves restoration)."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import fixtures.make_fixture_run as fx
from drdrill.engine.plan import Plan, build_plan
from drdrill.engine.predict import predict
from drdrill.journal.record import build_record, write_record
from drdrill.journal.store import JournalWriter
from drdrill.runbook.durations import format_duration
from drdrill.runbook.loader import load_runbook

# the fixture scenario's step names, with fence and promote run as one parallel group and
# service_restored marked where the service comes back
RUNBOOK = """\
name: postgres-failover
objectives: {rto: 20s, rpo: 0s}
roles: {primary: primary, standby: standby, app: app}
service:
  probe: {type: command, argv: [test, -f, up]}
steps:
  - {name: preflight replication check, probe: {type: command, argv: ["true"]}}
  - {name: confirm change window, manual: "Confirm the change window with the desk"}
  - {name: crash primary, playbook: crash.yml, role: primary, disaster: true, timeout: 30s}
  - name: fence and promote
    parallel:
      - {name: fence old primary, playbook: fence.yml, role: primary, timeout: 30s}
      - {name: promote standby, playbook: promote.yml, role: standby, retries: 1,
         timeout: 30s}
  - {name: repoint service, playbook: repoint.yml, role: app, timeout: 30s}
  - name: wait for service
    wait_for: {type: command, argv: [test, -f, up]}
    timeout: 30s
    checkpoint: service_restored
  - {name: verify data, probe: {type: command, argv: ["true"]}, on_failure: continue}
"""
INVENTORY = """\
all:
  vars: {ansible_connection: local}
  children:
    primary: {hosts: {pg1: {}}}
    standby: {hosts: {pg2: {}}}
    app: {hosts: {app1: {}}}
"""
# counted runs: (run id, started, service restored at, lost writes)
COUNTED = [
    ("r1", datetime(2026, 1, 5, tzinfo=UTC), 29.5, 0),  # passed
    ("r2", datetime(2026, 2, 5, tzinfo=UTC), 31.5, 0),  # passed
    ("r3", datetime(2026, 3, 5, tzinfo=UTC), 35.5, 2),  # failed (writes lost): still counts
]
FENCE_S, REPOINT_S, WAIT_S, PROMOTE_S = 3.5, 3.5, 2.5, 8.5  # fixture durations at delay 0


def rto_of(restored: float) -> float:
    return restored - 12.0


def promote_of(restored: float) -> float:
    return PROMOTE_S + (restored - 29.5)


def aborted_run(runs_dir: Path, run_id: str, started: datetime) -> None:
    """A fixture run whose run_finished says aborted — with a (huge) RTO it must not count."""
    events = fx._events(run_id, "postgres-failover", "drill", "alice", started, 60.0, 0.0,
                        80.0, 0)
    last = events[-1]
    assert last.type == "run_finished"
    events[-1] = dataclasses.replace(last, data={**last.data, "status": "aborted"})
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    writer = JournalWriter(run_dir / "journal.jsonl")
    for event in events:
        writer.handle(event)
    writer.close()
    write_record(run_dir, build_record(events, writer.last_hash))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    (root / "drills").mkdir()
    (root / "playbooks").mkdir()
    for book in ("crash", "fence", "promote", "repoint"):
        (root / "playbooks" / f"{book}.yml").write_text("- hosts: all\n  tasks: []\n")
    (root / "drills" / "postgres-failover.yml").write_text(RUNBOOK)
    (root / "inventory.yml").write_text(INVENTORY)
    runs = root / "runs"
    for run_id, started, restored, lost in COUNTED:
        fx.make_run(runs, run_id, started=started, restored=restored, lost=lost)
    newest = datetime(2026, 4, 5, tzinfo=UTC)
    aborted_run(runs, "r4-aborted", newest)
    fx.make_run(runs, "r5-incident", mode="incident", started=newest, restored=70.0, lost=0)
    fx.make_run(runs, "r6-other", runbook="postgres-restore", started=newest, restored=70.0,
                lost=0)
    return root


@pytest.fixture(scope="module")
def plan(tree: Path) -> Plan:
    return build_plan(load_runbook(tree / "drills" / "postgres-failover.yml"), None, "drill")


def test_the_fixture_records_hold_what_the_expectations_assume(tree: Path) -> None:
    record = json.loads((tree / "runs" / "r2" / "record.json").read_text())
    assert record["status"] == "passed" and record["mode"] == "drill"
    assert record["results"]["rto_s"] == pytest.approx(rto_of(31.5))
    aborted = json.loads((tree / "runs" / "r4-aborted" / "record.json").read_text())
    assert aborted["status"] == "aborted" and aborted["results"]["rto_s"] > 60


def test_counts_only_completed_runs_of_the_runbook_in_the_plans_mode(plan: Plan,
                                                                      tree: Path) -> None:
    prediction = predict(plan, tree / "runs")
    assert prediction.run_ids == ("r3", "r2", "r1")  # newest first; aborted/incident/other out


def test_each_step_has_its_past_median_and_worst(plan: Plan, tree: Path) -> None:
    steps = predict(plan, tree / "runs").steps
    promotions = [promote_of(restored) for _id, _s, restored, _l in COUNTED]
    promote = steps["promote standby"]
    assert promote.median_s == pytest.approx(statistics.median(promotions))
    assert promote.worst_s == pytest.approx(max(promotions)) and promote.runs == 3
    assert steps["fence old primary"].median_s == pytest.approx(FENCE_S)
    # verify data failed in r3 but ran to its end: its duration counts like any other
    assert steps["verify data"].runs == 3


def test_predicted_rto_is_the_median_and_worst_of_measured_rto(plan: Plan,
                                                               tree: Path) -> None:
    prediction = predict(plan, tree / "runs")
    rtos = [rto_of(restored) for _id, _s, restored, _l in COUNTED]
    assert prediction.rto is not None
    assert prediction.rto.median_s == pytest.approx(statistics.median(rtos))
    assert prediction.rto.worst_s == pytest.approx(max(rtos))
    assert prediction.objective_s == 20.0


def test_rto_path_sum_counts_a_parallel_group_at_its_longest_member(plan: Plan,
                                                                    tree: Path) -> None:
    prediction = predict(plan, tree / "runs")
    promotions = [promote_of(restored) for _id, _s, restored, _l in COUNTED]
    # path: fence ∥ promote, repoint, wait (verify data is after service_restored)
    total = prediction.path_sum
    assert total is not None and prediction.path_missing == ()
    assert total.median_s == pytest.approx(
        max(FENCE_S, statistics.median(promotions)) + REPOINT_S + WAIT_S)
    assert total.worst_s == pytest.approx(max(FENCE_S, max(promotions)) + REPOINT_S + WAIT_S)


def test_limit_keeps_the_newest_runs(plan: Plan, tree: Path) -> None:
    prediction = predict(plan, tree / "runs", limit=2)
    assert prediction.run_ids == ("r3", "r2")
    assert prediction.rto is not None
    assert prediction.rto.median_s == pytest.approx((rto_of(35.5) + rto_of(31.5)) / 2)


def test_no_history(plan: Plan, tmp_path: Path) -> None:
    prediction = predict(plan, tmp_path / "missing")
    assert prediction.runs == 0 and prediction.rto is None and prediction.path_sum is None
    assert dict(prediction.steps) == {}


def test_a_renamed_path_step_has_no_sum_and_says_which(tree: Path) -> None:
    text = RUNBOOK.replace("name: repoint service", "name: repoint the service")
    drill = tree / "drills" / "renamed.yml"
    drill.write_text(text)
    renamed = build_plan(load_runbook(drill), None, "drill")
    prediction = predict(renamed, tree / "runs")
    assert prediction.path_sum is None
    assert prediction.path_missing == ("repoint the service",)
    assert prediction.rto is not None  # the runs' own RTO still predicts


def _plan_cli(tree: Path, runs: Path) -> subprocess.CompletedProcess[str]:
    drdrill = str(Path(sys.executable).parent / "drdrill")
    return subprocess.run([drdrill, "plan", "drills/postgres-failover.yml", "-i",
                           "inventory.yml", "--runs-dir", str(runs)], cwd=tree,
                          capture_output=True, text=True, check=False, timeout=60,
                          env={"COLUMNS": "200", "PATH": os.environ.get("PATH", "/usr/bin")})


def test_plan_cli_shows_past_durations_and_the_predicted_rto(tree: Path, plan: Plan) -> None:
    done = _plan_cli(tree, tree / "runs")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "past med/worst" in out
    promote_line = next(line for line in out.splitlines() if "promote standby" in line)
    assert "10.500s/14.500s" in promote_line  # promotions 8.5, 10.5, 14.5 s
    assert ("predicted RTO (measured RTO of the last 3 runs): median 19.500s, worst 23.500s "
            "— median within, worst over the objective (20.000s)") in out
    assert "RTO-path steps' sum (each step's past duration, no probe resolution): median " \
           "16.500s, worst 20.500s" in out
    assert plan.rto_path_budget_s is not None  # the prediction sits beside today's budget
    assert f"RTO path budget (sum of timeouts): {format_duration(plan.rto_path_budget_s)}" in out
    assert "warning: past runs' worst RTO 23.500s is over the RTO objective of 20.000s" in out


def test_plan_cli_without_history_says_so(tree: Path, tmp_path: Path) -> None:
    done = _plan_cli(tree, tmp_path / "no-runs")
    assert done.returncode == 0, done.stderr
    assert "predicted RTO: no history — no completed run of this runbook in this mode" in \
        done.stdout
    assert "past med/worst" not in done.stdout
