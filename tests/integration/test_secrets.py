"""Secret values never reach the run directory or the terminal; runbook values with shell
metacharacters reach playbooks as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crashkit import DRILLS, cli

pytestmark = pytest.mark.integration
DB_PASSWORD = "S3cr3t-XYZ"
API_TOKEN = "t0k3n-Qv7-ABC"


def _hits(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``root`` (recursively, binary-safe) containing any needle."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {n!r}" for n in needles if n in data]
    return found


def test_secrets_appear_nowhere(local_inventory: Path, tmp_path: Path) -> None:
    sink = tmp_path / "sink" / "used"  # outside the run directory: proof the value was used
    sink.parent.mkdir()
    runs = tmp_path / "runs"
    done = cli("run", str(DRILLS / "secrets-used.yml"), "-i", str(local_inventory), "--yes",
               "-e", f"db_password={DB_PASSWORD}", "-e", f"secret_sink={sink}",
               "--runs-dir", str(runs), cwd=tmp_path,
               env={"DRDRILL_SECRET_API_TOKEN": API_TOKEN,
                    "DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert sink.read_text() == f"{DB_PASSWORD}:{API_TOKEN}"  # the playbook got both values
    (run_dir,) = list(runs.iterdir())
    # the careless tasks ran and were journaled (with the values masked)
    journal = (run_dir / "journal.jsonl").read_text()
    assert "Echo them carelessly" in journal and "could not log in with ********" in journal
    assert (run_dir / "report.html").is_file()
    needles = [DB_PASSWORD.encode(), API_TOKEN.encode()]
    assert _hits(run_dir, needles) == []
    assert _hits(tmp_path / "locks", needles) == []
    for stream in (done.stdout, done.stderr):
        assert DB_PASSWORD not in stream and API_TOKEN not in stream
    # the JSON record on stdout, and verify's view, stay clean too
    as_json = cli("report", str(run_dir), "--format", "json", cwd=tmp_path)
    assert DB_PASSWORD not in as_json.stdout + as_json.stderr
    assert API_TOKEN not in as_json.stdout + as_json.stderr
    assert cli("verify", str(run_dir), cwd=tmp_path).returncode == 0
    assert json.loads((run_dir / "record.json").read_text())["status"] == "passed"


def test_shell_metacharacters_stay_data(local_inventory: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    work = tmp_path / "work"
    work.mkdir()
    done = cli("run", str(DRILLS / "metachar.yml"), "-i", str(local_inventory), "--yes",
               "--runs-dir", str(runs), cwd=work,
               env={"DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = list(runs.iterdir())
    # the values arrived intact, as file names and contents
    assert (run_dir / "out-$(touch pwned)").is_file()
    assert (run_dir / "file-; touch pwned2").read_text() == "; touch pwned2"
    for name in ("pwned", "pwned2"):
        assert list(tmp_path.rglob(name)) == []  # cwd, run dir, ansible's dirs: all in here
        # ansible runs modules of a local host in the playbook's directory
        for root in (DRILLS.parent / "playbooks", Path.cwd(), Path.home(), Path("/")):
            assert not (root / name).exists()
