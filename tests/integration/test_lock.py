"""One drill per environment (the lock), and the safety gates: production confirmation and
go/no-go gates, through the real console script."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from crashkit import DRILLS, after_event, cli, run_dir_of, signal_when, start

from drdrill.engine.lock import lock_key
from drdrill.executors.inventory import load_inventory
from drdrill.journal.store import read_events
from drdrill.runbook.loader import load_runbook

pytestmark = pytest.mark.integration


def _env(tmp_path: Path) -> dict[str, str]:
    return {"DRDRILL_LOCK_DIR": str(tmp_path / "locks")}


def test_second_concurrent_run_refused_naming_the_holder(local_inventory: Path,
                                                         tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = start("run", str(DRILLS / "lock-hold.yml"), "-i", str(local_inventory), "--yes",
                  "--operator", "alice", "--runs-dir", str(runs), cwd=tmp_path,
                  env=_env(tmp_path))
    try:
        run_dir, _ = signal_when(first, runs, after_event("step_started"), sig=0)
        second = cli("run", str(DRILLS / "lock-hold.yml"), "-i", str(local_inventory), "--yes",
                     "--operator", "bob", "--runs-dir", str(runs), cwd=tmp_path,
                     env=_env(tmp_path))
        assert second.returncode == 2, second.stderr
        assert (f"another drill holds this environment: run {run_dir.name} by alice "
                f"(pid {first.pid} on {socket.gethostname()}") in second.stderr
        assert [p.name for p in runs.iterdir()] == [run_dir.name]  # nothing else ran
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 3
    assert list((tmp_path / "locks").iterdir()) == []  # released on the way out


def test_stale_lock_of_a_dead_process_is_taken_over(local_inventory: Path,
                                                    tmp_path: Path) -> None:
    drill = DRILLS / "rollback-always.yml"
    inventory = load_inventory(local_inventory)
    key = lock_key(load_runbook(drill, inventory), inventory)
    dead = subprocess.Popen(["true"])
    dead.wait()
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / f"{key}.lock").write_text(json.dumps({
        "pid": dead.pid, "host": socket.gethostname(), "run_id": "20260101T000000Z-old-abc123",
        "operator": "carol", "since": "2026-01-01T00:00:00+00:00"}))
    done = cli("run", str(drill), "-i", str(local_inventory), "--yes", "--runs-dir",
               str(tmp_path / "runs"), cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (f"taking over a stale lock of dead process {dead.pid} "
            "(run 20260101T000000Z-old-abc123)") in done.stderr
    assert list(locks.iterdir()) == []


@pytest.mark.parametrize("args", [["--yes"], ["--yes", "--confirm", "staging"], []])
def test_production_refused_without_confirmation(args: list[str], local_inventory: Path,
                                                 tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = cli("run", str(DRILLS / "production-gate.yml"), "-i", str(local_inventory), *args,
               "--runs-dir", str(runs), cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 3, done.stderr
    assert "refusing to run against production without confirmation" in done.stderr
    assert "--confirm production" in done.stderr
    assert not runs.exists()  # nothing executed, no run directory


def test_production_inventory_also_needs_confirmation(tmp_path: Path) -> None:
    inventory = tmp_path / "prod.yml"
    inventory.write_text("all:\n  vars:\n    ansible_connection: local\n"
                         "    drdrill_environment: production\n"
                         "  children:\n    primary: {hosts: {pg1: {}}}\n")
    done = cli("run", str(DRILLS / "rollback-always.yml"), "-i", str(inventory), "--yes",
               "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == 3, done.stderr
    assert not (tmp_path / "runs").exists()


def test_production_runs_with_confirm(local_inventory: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = cli("run", str(DRILLS / "production-gate.yml"), "-i", str(local_inventory),
               "--confirm", "production", "--runs-dir", str(runs), cwd=tmp_path,
               env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(runs)
    assert run_dir is not None and (run_dir / "production-ran").exists()


def test_yes_never_answers_a_production_gate(local_inventory: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = cli("run", str(DRILLS / "production-gated-step.yml"), "-i", str(local_inventory),
               "--confirm", "production", "--yes", "--runs-dir", str(runs), cwd=tmp_path,
               env=_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert "--yes never answers them" in done.stderr
    assert not runs.exists()


def test_gates_with_yes_record_answer_and_who(local_inventory: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = cli("run", str(DRILLS / "gated.yml"), "-i", str(local_inventory), "--yes",
               "--operator", "alice", "--runs-dir", str(runs), cwd=tmp_path,
               env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(runs)
    assert run_dir is not None
    events = read_events(run_dir / "journal.jsonl")
    gates = [e.data for e in events if e.type == "gate"]
    assert [(g["name"], g["answer"], g["by"]) for g in gates] == [
        ("fail over", "go", "alice (--yes)"), ("fail back", "go", "alice (--yes)")]
    # each gate is answered before its step starts
    order = [(e.type, e.data.get("name")) for e in events if e.type in ("gate", "step_started")]
    assert order == [("gate", "fail over"), ("step_started", "fail over"),
                     ("gate", "fail back"), ("step_started", "fail back")]
    assert os.path.exists(run_dir / "record.json")
