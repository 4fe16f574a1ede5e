"""Incident mode: no fault injection, T0 = the declared instant, RTO counted from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drdrill.journal.store import read_events

pytestmark = pytest.mark.integration
DRDRILL = str(Path(sys.executable).parent / "drdrill")
DRILL = Path(__file__).resolve().parent.parent / "fixtures" / "drills" / "incident.yml"


def test_incident_mode_counts_rto_from_the_declared_instant(local_inventory: Path,
                                                             tmp_path: Path) -> None:
    declared = datetime.now(tz=UTC) - timedelta(seconds=5)
    done = subprocess.run(
        [DRDRILL, "run", str(DRILL), "-i", str(local_inventory), "--mode", "incident",
         "--declared-at", declared.isoformat().replace("+00:00", "Z"), "--yes", "--json",
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300,
        check=False, env={**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    run_dir = tmp_path / "runs" / record["run_id"]
    assert record["mode"] == "incident"
    names = [s["name"] for s in record["steps"]]
    assert "inject a fault (drills only)" not in names
    assert not (run_dir / "injected").exists()  # no fault injected in incident mode
    t0 = next(e for e in read_events(run_dir / "journal.jsonl") if e.type == "t0")
    assert t0.data["source"] == "declared"
    assert t0.mono < -4.5  # five seconds before the run started
    # ground truth: the flag's creation against the declared instant, on this machine's clock
    truth = os.stat(run_dir / "up").st_mtime - declared.timestamp()
    rto = record["results"]["rto_s"]
    assert truth - 0.05 <= rto <= truth + record["service_interval_s"] + 0.05, (rto, truth)
    assert rto > 5.0 and record["results"]["rto_met"] is True
    assert time.time() - declared.timestamp() < 300


def test_from_an_unknown_step_is_bad_input_naming_the_steps(local_inventory: Path,
                                                             tmp_path: Path) -> None:
    done = subprocess.run(
        [DRDRILL, "run", str(DRILL), "-i", str(local_inventory), "--mode", "incident",
         "--from", "recovr", "--yes", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=120,
        check=False, env={**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    assert done.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    assert "'recovr'" in output and "'recover'" in output and "'service back'" in output
    assert "inject a fault" not in output  # drill-only: not a step of the incident plan
    assert not (tmp_path / "runs").exists()  # nothing was executed

