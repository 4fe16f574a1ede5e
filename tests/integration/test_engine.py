"""The engine end to end with real ansible-runner (ansible_connection: local)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.executors.proctree import cmdline, descendants
from drdrill.journal.record import build_record
from drdrill.journal.store import read_events
from drdrill.journal.verify import verify_run

pytestmark = pytest.mark.integration
DRILLS = Path(__file__).resolve().parent.parent / "fixtures" / "drills"


def _run(name: str, inventory: Path, runs: Path) -> tuple[object, dict]:
    result = run_drill(RunOptions((DRILLS / f"{name}.yml"), inventory, yes=True, runs_dir=runs))
    record = json.loads((result.run_dir / "record.json").read_text())
    return result, record


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_failover_measures_rto_within_one_probe_interval(local_inventory: Path,
                                                         tmp_path: Path) -> None:
    result, record = _run("flag-failover", local_inventory, tmp_path / "runs")
    assert result.status == "passed", record.get("reason")
    assert result.exit_code == 0
    # ground truth: when the recovery playbook actually re-created the flag (file mtime),
    # against T0. T0 is the fault's effect (DESIGN.md "T0"): here the first failed probe
    # attempt, which may precede the disaster step's end by Ansible's teardown; it must lie
    # inside the disaster step. Both on this machine's clock.
    events = read_events(result.run_dir / "journal.jsonl")
    step_t0 = next(e for e in events if e.type == "t0")
    res = record["results"]
    assert res["t0_source"] in ("first_failed_probe", "disaster_step")
    assert res["disaster_started_mono"] <= res["t0_mono"] <= step_t0.mono
    t0_wall = _wall(step_t0.wall) - (step_t0.mono - res["t0_mono"])
    truth = os.stat(result.run_dir / "up").st_mtime - t0_wall
    interval = record["service_interval_s"]
    rto = record["results"]["rto_s"]
    assert truth > 2.0  # the recovery playbook pauses 2 s before restoring
    assert truth - 0.05 <= rto <= truth + interval + 0.05, (rto, truth)
    # step durations are measured: the recovery step includes its 2 s pause
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["recover"]["duration_s"] >= 2.0
    assert steps["recover"]["status"] == "ok"
    assert record["results"]["downtime_s"] is not None
    assert record["checkpoints"].keys() >= {"service_restored"}
    assert record["results"]["data_verified"] is True  # no verification step: no write lost


def test_record_rebuilt_from_journal_equals_written(local_inventory: Path, tmp_path: Path) -> None:
    result, record = _run("flag-failover", local_inventory, tmp_path / "runs")
    journal = result.run_dir / "journal.jsonl"
    rebuilt = build_record(read_events(journal), record["journal_last_hash"])
    assert json.loads(json.dumps(rebuilt, sort_keys=True, default=str)) == record
    assert verify_run(result.run_dir).intact


def test_abort_runs_rollback(local_inventory: Path, tmp_path: Path) -> None:
    result, record = _run("abort-rollback", local_inventory, tmp_path / "runs")
    assert result.status == "aborted" and result.exit_code == 3
    phases = [(s["phase"], s["name"], s["status"]) for s in record["steps"]]
    assert ("main", "breaks", "failed") in phases
    assert ("rollback", "undo", "ok") in phases
    assert all(name != "never runs" for _, name, _ in phases)
    assert (result.run_dir / "rolled-back").exists()


def test_continue_and_retries(local_inventory: Path, tmp_path: Path) -> None:
    result, record = _run("continue-retry", local_inventory, tmp_path / "runs")
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["flaky"]["attempts"] == 2 and steps["flaky"]["status"] == "ok"
    assert steps["verification that fails"]["status"] == "failed"
    assert steps["still runs"]["status"] == "ok"  # on_failure: continue went on
    assert (result.run_dir / "reached").exists()
    assert result.status == "failed" and result.exit_code == 1
    assert record["results"]["data_verified"] is False  # its verification step failed
    assert steps["verification that fails"]["verification"] is True


def test_hanging_task_is_killed_at_its_timeout(local_inventory: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result, record = _run("hang", local_inventory, tmp_path / "runs")
    step = record["steps"][0]
    assert step["status"] == "timeout"
    # timeout 3 s; the cancel check runs every 0.2 s and the kill takes a moment
    assert 3.0 <= step["duration_s"] <= 3.0 + 1.0, step["duration_s"]
    assert result.exit_code == 3
    leftovers = [p for p in descendants(os.getpid())
                 if "613.25" in cmdline(p) or "ansible" in cmdline(p)]
    assert leftovers == []
    assert not any("613.25" in cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())
    assert time.monotonic() - started < 60


def test_lost_writes_and_rpo_from_the_canary(local_inventory: Path, tmp_path: Path) -> None:
    result, record = _run("drop-writes", local_inventory, tmp_path / "runs")
    results = record["results"]
    assert results["lost_writes"] == 8
    interval = record["canary_interval_s"]
    # the truth from the store itself: which sequence numbers survived, and when the canary
    # attempted each (a loaded machine stretches 8 writes over more than 8 intervals)
    survived = {int(x) for x in (result.run_dir / "store.log").read_text().split()}
    writes = {e["data"]["seq"]: e["mono"] for e in map(json.loads, (
        result.run_dir / "journal.jsonl").read_text().splitlines())
        if e["type"] == "canary_write" and e["data"]["acked"]}
    lost = sorted(set(writes) - survived)
    assert len(lost) == 8
    newest_survivor = max(s for s in survived if s < lost[-1])
    truth = writes[lost[-1]] - writes[newest_survivor]
    assert truth >= 8 * interval - 0.01
    assert abs(results["rpo_s"] - truth) <= interval, (results["rpo_s"], truth)
    assert results["rpo_met"] is False  # objective 500 ms
    assert result.status == "failed" and result.exit_code == 1


def test_task_checkpoint_is_stamped_when_the_task_ends(local_inventory: Path,
                                                       tmp_path: Path) -> None:
    result, record = _run("task-checkpoint", local_inventory, tmp_path / "runs")
    assert result.status == "passed", record.get("reason")
    offsets = record["checkpoint_offsets_s"]
    step = record["steps"][0]
    truth = os.stat(result.run_dir / "acted").st_mtime - _wall(record["started_at"])
    # stamped at the task's end (after the 1 s sleep), well before the step's end (2 s later)
    assert step["start_s"] + 1.0 <= offsets["acted"] <= step["end_s"] - 1.5
    assert abs(offsets["acted"] - truth) < 0.5, (offsets["acted"], truth)
    assert offsets["step_done"] == pytest.approx(step["end_s"], abs=0.01)
