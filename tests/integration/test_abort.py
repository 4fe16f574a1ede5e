"""Ctrl-C through the real console script: the step's process tree ends, rollback runs,
status aborted, exit 3; a second Ctrl-C stops the rollback at once, recorded as such."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from crashkit import DRDRILL, DRILLS, cli, live_processes, run_dir_of, wait_gone

from drdrill.journal.store import read_events

pytestmark = pytest.mark.integration


def _marker() -> str:
    return f"600.{secrets.randbelow(10**6):06d}1"


def _start(name: str, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    # its own session, like a foreground job: a terminal's Ctrl-C goes to the whole group
    return subprocess.Popen(
        [DRDRILL, "run", str(DRILLS / f"{name}.yml"), "-i", str(tmp_path / "inventory.yml"),
         "--yes", "--runs-dir", str(tmp_path / "runs"), *extra],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks")})


def _wait_for_process(marker: str, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if any(line.startswith(f"sleep {marker}") for _, line in live_processes(marker)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"drdrill ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no sleep {marker} process appeared")


def _ctrl_c(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)


def _leftovers(run_dir: Path, *markers: str) -> list[tuple[int, str]]:
    left = wait_gone(f"{run_dir.resolve()}/", timeout_s=3)
    for marker in markers:
        left += wait_gone(marker, timeout_s=3)
    return left


def test_ctrl_c_mid_step_rolls_back_and_exits_3(local_inventory: Path, tmp_path: Path) -> None:
    marker = _marker()
    proc = _start("abort-hang", tmp_path, "-e", f"sleep_s={marker}")
    _wait_for_process(marker, proc)
    interrupted_at = time.monotonic()
    _ctrl_c(proc)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - interrupted_at
    assert proc.returncode == 3, (out[-2000:], err[-2000:])
    run_dir = run_dir_of(tmp_path / "runs")
    assert run_dir is not None
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "aborted"
    assert record["reason"] == "interrupted by the operator"
    steps = {(s["phase"], s["name"]): s for s in record["steps"]}
    assert steps[("main", "hangs")]["status"] == "aborted"
    assert steps[("rollback", "undo")]["status"] == "ok"
    assert ("main", "never runs") not in steps
    assert (run_dir / "rolled-back").exists()
    finished = [e for e in read_events(run_dir / "journal.jsonl") if e.type == "rollback_finished"]
    assert [e.data["status"] for e in finished] == ["ok"]
    # the hung step was stopped well before its 120 s timeout, its whole tree included
    assert steps[("main", "hangs")]["duration_s"] < 100
    assert took < 100
    assert _leftovers(run_dir, marker) == []
    assert cli("verify", str(run_dir), cwd=tmp_path).returncode == 0


def test_second_ctrl_c_stops_the_rollback(local_inventory: Path, tmp_path: Path) -> None:
    marker, rollback_marker = _marker(), _marker()
    proc = _start("abort-slow-rollback", tmp_path, "-e", f"sleep_s={marker}",
                  "-e", f"rollback_sleep_s={rollback_marker}")
    _wait_for_process(marker, proc)
    _ctrl_c(proc)
    _wait_for_process(rollback_marker, proc)  # the rollback is now hanging
    second_at = time.monotonic()
    _ctrl_c(proc)
    out, err = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - second_at
    assert proc.returncode == 3, (out[-2000:], err[-2000:])
    # "immediately": the 0.2 s cancel check plus the tree kill's grace, not the 120 s timeout
    assert stopped_in < 15, stopped_in
    run_dir = run_dir_of(tmp_path / "runs")
    assert run_dir is not None
    events = read_events(run_dir / "journal.jsonl")
    finished = [e.data["status"] for e in events if e.type == "rollback_finished"]
    assert finished == ["interrupted"]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "aborted"
    steps = {(s["phase"], s["name"]): s["status"] for s in record["steps"]}
    assert steps[("rollback", "slow undo")] == "aborted"
    assert ("rollback", "second undo") not in steps
    assert not (run_dir / "second-undo").exists()
    assert _leftovers(run_dir, marker, rollback_marker) == []


@pytest.mark.parametrize(("name", "code", "status", "rolled_back"), [
    ("rollback-always", 0, "passed", True),
    ("rollback-never", 3, "aborted", False),
])
def test_rollback_policy(name: str, code: int, status: str, rolled_back: bool,
                         local_inventory: Path, tmp_path: Path) -> None:
    done = cli("run", str(DRILLS / f"{name}.yml"), "-i", str(local_inventory), "--yes",
               "--json", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
               env={"DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    assert done.returncode == code, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == status
    rollback = [s for s in record["steps"] if s["phase"] == "rollback"]
    events = read_events(tmp_path / "runs" / record["run_id"] / "journal.jsonl")
    if rolled_back:
        assert [(s["name"], s["status"]) for s in rollback] == [("tidy up", "ok")]
        assert [e.data for e in events if e.type == "rollback_started"] == [
            {"reason": "policy: always", "after_abort": False}]
    else:
        assert rollback == []
        assert not [e for e in events if e.type.startswith("rollback")]
