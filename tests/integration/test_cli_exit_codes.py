"""The exit-status contract of `drdrill run`, through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DRILLS = Path(__file__).resolve().parent.parent / "fixtures" / "drills"
DRDRILL = str(Path(sys.executable).parent / "drdrill")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)


@pytest.mark.parametrize(("name", "code", "status"), [
    ("flag-failover", 0, "passed"),
    ("drop-writes", 1, "failed"),
    ("abort-rollback", 3, "aborted"),
])
def test_run_exit_status_and_json(name: str, code: int, status: str, local_inventory: Path,
                                  tmp_path: Path) -> None:
    done = _cli("run", str(DRILLS / f"{name}.yml"), "-i", str(local_inventory), "--yes", "--json",
                "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == code, done.stderr
    record = json.loads(done.stdout)  # --json: the record and nothing else on stdout
    assert record["status"] == status
    assert (tmp_path / "runs" / record["run_id"] / "record.json").is_file()


def test_bad_input_exits_2_and_runs_nothing(local_inventory: Path, tmp_path: Path) -> None:
    bad = tmp_path / "drills" / "bad.yml"
    bad.parent.mkdir()
    bad.write_text("version: 1\nname: bad\nobjectives: {rto: 10s, rpo: 0s}\nsteps:\n"
                   "  - name: x\n    pause: soon\n")
    done = _cli("run", str(bad), "-i", str(local_inventory), "--yes",
                "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2
    assert "bad.yml:6:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_inventory_exits_2(tmp_path: Path) -> None:
    done = _cli("run", str(DRILLS / "flag-failover.yml"), "-i", str(tmp_path / "nope.yml"), "--yes",
                cwd=tmp_path)
    assert done.returncode == 2
    assert "nope.yml: inventory not found" in done.stderr
