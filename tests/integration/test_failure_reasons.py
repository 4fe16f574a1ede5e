"""A failed playbook step says why: the failing task's own message, with the task and the
host, in record.json and in the reports that read it (real ansible-runner, local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drdrill.engine.runner import RunOptions, run_drill

pytestmark = pytest.mark.integration
DRILLS = Path(__file__).resolve().parent.parent / "fixtures" / "drills"


def test_failed_step_error_is_the_tasks_own_message(local_inventory: Path,
                                                     tmp_path: Path) -> None:
    result = run_drill(RunOptions(DRILLS / "abort-rollback.yml", local_inventory, yes=True,
                                  runs_dir=tmp_path / "runs"))
    record = json.loads((result.run_dir / "record.json").read_text())
    (step,) = [s for s in record["steps"] if s["name"] == "breaks"]
    assert step["status"] == "failed"
    error = step["error"]
    assert "this step fails on purpose" in error  # fail.yml's msg
    assert "Fail on purpose" in error  # the task's name
    assert " on pg1:" in error  # the host it failed on (role primary of the inventory)
    for report in ("report.md", "report.html"):
        assert "this step fails on purpose" in (result.run_dir / report).read_text(), report


def test_terminal_verdict_shows_the_reason_and_the_next_command(local_inventory: Path,
                                                                tmp_path: Path) -> None:
    import subprocess
    import sys

    drdrill = str(Path(sys.executable).parent / "drdrill")
    done = subprocess.run([drdrill, "run", str(DRILLS / "abort-rollback.yml"), "-i",
                           str(local_inventory), "--yes", "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300, check=False, env={"COLUMNS": "200", "PATH": "/usr/bin"})
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    assert "task 'Fail on purpose' failed on pg1: this step fails on purpose" in out
    assert "next: " in out
    assert "{'" not in out  # no Python dict reprs anywhere in the terminal output
