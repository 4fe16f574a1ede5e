"""Secrets are never journaled, so a resumed run must be given them again (and says how)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
DRDRILL = str(Path(sys.executable).parent / "drdrill")
DRILL = Path(__file__).resolve().parent.parent / "fixtures" / "drills" / "secret-pause.yml"


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


def _cut_before_finish(run_dir: Path) -> None:
    """Make the finished run look like one whose orchestrator died after step 1."""
    journal = run_dir / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines)
               if b'"type":"step_started"' in line and b'"name":"second"' in line)
    journal.write_bytes(b"".join(lines[:cut]))
    (run_dir / "record.json").unlink()


def test_resume_asks_for_secrets_again(local_inventory: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks")}
    runs = tmp_path / "runs"
    done = _cli(["run", str(DRILL), "-i", str(local_inventory), "--yes", "-e", "tok=Hush-123",
                 "--runs-dir", str(runs)], tmp_path, env)
    assert done.returncode == 0, done.stderr
    run_dir = next(runs.iterdir())
    assert b"Hush-123" not in (run_dir / "journal.jsonl").read_bytes()
    _cut_before_finish(run_dir)

    refused = _cli(["resume", str(run_dir), "--yes"], tmp_path, env)
    assert refused.returncode == 2
    assert "tok" in refused.stderr and "DRDRILL_SECRET_TOK" in refused.stderr

    resumed = _cli(["resume", str(run_dir), "--yes"], tmp_path,
                   {**env, "DRDRILL_SECRET_TOK": "Hush-123"})
    assert resumed.returncode == 0, resumed.stderr
    assert _cli(["verify", str(run_dir)], tmp_path, env).returncode == 0
    assert b"Hush-123" not in (run_dir / "journal.jsonl").read_bytes()
