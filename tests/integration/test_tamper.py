"""Tamper evidence: on a copy of a finished run, each kind of edit makes `drdrill verify` exit 1
naming the exact journal line or file that was changed."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from crashkit import DRILLS, cli

from drdrill.engine.runner import RunOptions, run_drill

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tamper")
    inventory = base / "inventory.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "  children:\n    primary: {hosts: {pg1: {}}}\n    standby: {hosts: {pg2: {}}}\n")
    result = run_drill(RunOptions(DRILLS / "flag-failover.yml", inventory, yes=True,
                                  runs_dir=base / "runs"))
    assert result.status == "passed"
    return result.run_dir


@pytest.fixture()
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / finished_run.name
    shutil.copytree(finished_run, target)
    return target


def _verify(run_dir: Path) -> tuple[int, str]:
    done = cli("verify", str(run_dir), cwd=run_dir.parent)
    return done.returncode, done.stderr


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "journal.jsonl").read_bytes().splitlines(keepends=True)


def _write(run_dir: Path, lines: list[bytes]) -> None:
    (run_dir / "journal.jsonl").write_bytes(b"".join(lines))


def test_intact_copy_verifies(run_copy: Path) -> None:
    code, err = _verify(run_copy)
    assert code == 0, err


def test_one_byte_changed_in_a_middle_line(run_copy: Path) -> None:
    lines = _lines(run_copy)
    n = len(lines) // 2  # 1-based line number n is lines[n - 1]
    line = lines[n - 1]
    at = line.index(b'"mono":') + len(b'"mono":')
    digit = line[at:at + 1]
    assert digit.isdigit()
    lines[n - 1] = line[:at] + (b"7" if digit != b"7" else b"8") + line[at + 1:]
    _write(run_copy, lines)
    code, err = _verify(run_copy)
    assert code == 1
    assert f"journal.jsonl:{n}: line altered" in err, err


def test_one_byte_changed_breaking_json(run_copy: Path) -> None:
    lines = _lines(run_copy)
    n = len(lines) // 3
    lines[n - 1] = lines[n - 1].replace(b"{", b"[", 1)
    _write(run_copy, lines)
    code, err = _verify(run_copy)
    assert code == 1
    assert f"journal.jsonl:{n}: not valid JSON" in err, err


def test_a_line_deleted(run_copy: Path) -> None:
    lines = _lines(run_copy)
    n = len(lines) // 2
    del lines[n - 1]
    _write(run_copy, lines)
    code, err = _verify(run_copy)
    assert code == 1
    assert f"journal.jsonl:{n}: hash chain broken" in err, err


def test_two_lines_swapped(run_copy: Path) -> None:
    lines = _lines(run_copy)
    n = len(lines) // 2
    lines[n - 1], lines[n] = lines[n], lines[n - 1]
    _write(run_copy, lines)
    code, err = _verify(run_copy)
    assert code == 1
    assert f"journal.jsonl:{n}: hash chain broken" in err, err


def test_last_line_altered(run_copy: Path) -> None:
    lines = _lines(run_copy)
    lines[-1] = lines[-1].replace(b'"passed"', b'"failed"')
    _write(run_copy, lines)
    code, err = _verify(run_copy)
    assert code == 1
    assert f"journal_last_hash does not match the journal's last line {len(lines)}" in err, err


def test_record_value_edited(run_copy: Path) -> None:
    path = run_copy / "record.json"
    record = json.loads(path.read_text())
    record["results"]["rto_s"] = round(record["results"]["rto_s"] / 2, 6)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    code, err = _verify(run_copy)
    assert code == 1
    assert "record.json: field 'results' differs from what the journal derives" in err, err
    assert err.count("TAMPERED") == 1


def test_step_artifact_modified(run_copy: Path) -> None:
    sums = (run_copy / "ARTIFACTS.sha256").read_text().splitlines()
    k, name = next((i, line.split("  ", 1)[1]) for i, line in enumerate(sums, start=1)
                   if re.search(r"^steps/.*/artifacts/run/stdout$", line.split("  ", 1)[1]))
    with open(run_copy / name, "ab") as fh:
        fh.write(b" ")
    code, err = _verify(run_copy)
    assert code == 1
    assert f"ARTIFACTS.sha256:{k}: {name} was modified" in err, err
