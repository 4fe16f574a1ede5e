"""A joint exercise end to end with real processes: two participants run a small local
runbook (drills/local-smoke.yml plus the exercise's common-check steps; no database) through
``drdrill run --exercise``, each signing with its own key; ``drdrill verify`` checks the
signature; ``drdrill exercise merge`` merges both and refuses a tampered copy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drdrill.journal.store import read_events

DRDRILL = str(Path(sys.executable).with_name("drdrill"))
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = """\
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    primary: {hosts: {site-a: {}}}
    standby: {hosts: {site-b: {}}}
"""
EXTRA_STEPS = """\
  - name: reach the backup site
    probe: {type: command, argv: [test, -f, state/service-up]}
    exercise_check: reach_backup_site
  - name: place a test order
    probe: {type: command, argv: [sh, -c, 'echo order >> state/orders && test -s state/orders']}
    exercise_check: test_transaction
  - name: verify data
    probe: {type: command, argv: [test, -s, state/canary.log]}
"""

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def drdrill(cwd: Path, *args: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRDRILL_RUNS_DIR": str(cwd / "runs"),
           "DRDRILL_LOCK_DIR": str(cwd / "lock"), "DRDRILL_LAB_DIR": str(cwd / "lab")}
    env.pop("DRDRILL_EXERCISE_KEY", None)
    if key is not None:
        env["DRDRILL_EXERCISE_KEY"] = str(key)
    return subprocess.run([DRDRILL, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def workspace(tmp: Path) -> Path:
    shutil.copytree(ROOT / "playbooks", tmp / "playbooks")
    (tmp / "drills").mkdir()
    (tmp / "lock").mkdir()
    smoke = (ROOT / "drills" / "local-smoke.yml").read_text()
    head, sep, _manual = smoke.partition("  - name: tell the team\n")
    assert sep, "local-smoke.yml changed: update this test's runbook copy"
    rest = _manual.split("rollback:", 1)[1]
    (tmp / "drills" / "smoke-ex.yml").write_text(head + EXTRA_STEPS + "rollback:" + rest)
    (tmp / "inv.yml").write_text(INVENTORY)
    return tmp / "drills" / "smoke-ex.yml"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_two_participants_run_sign_verify_and_merge(tmp_path: Path) -> None:
    runbook = workspace(tmp_path)
    for name in ("bank-a", "bank-b", "bank-c"):
        assert drdrill(tmp_path, "exercise", "keygen", name, "-o", "keys").returncode == 0
    now = datetime.now(tz=UTC)
    made = drdrill(tmp_path, "exercise", "init", "--id", "ex-it", "--scenario", "site lost",
                   "--t0", iso(now), "--t0-source", "declared", "--window",
                   f"{iso(now - timedelta(minutes=5))}/{iso(now + timedelta(hours=1))}",
                   *(a for n in ("bank-a", "bank-b", "bank-c")
                     for a in ("--participant", f"{n}=keys/{n}.pub")),
                   "--rto", "5m", "--rpo", "1s", "-o", "exercise.yml")
    assert made.returncode == 0, made.stderr
    # bank-c's key cannot sign for bank-b: refused before anything runs
    wrong = drdrill(tmp_path, "run", str(runbook), "-i", "inv.yml", "--exercise",
                    "exercise.yml", "--participant", "bank-b", "--key", "keys/bank-c.key",
                    "--yes")
    assert wrong.returncode == 2 and "is not bank-b's key" in wrong.stderr
    assert not (tmp_path / "runs").exists()
    run_dirs = {}
    for name in ("bank-a", "bank-b"):
        done = drdrill(tmp_path, "run", str(runbook), "-i", "inv.yml", "--exercise",
                       "exercise.yml", "--participant", name, "--yes", "--json",
                       key=tmp_path / "keys" / f"{name}.key")
        record = json.loads(done.stdout)
        assert record["exercise"]["id"] == "ex-it", done.stderr
        assert record["exercise"]["participant"] == name
        assert record["exercise"]["checks"] == {"reach_backup_site": "reach the backup site",
                                                "test_transaction": "place a test order",
                                                "verify_data": "verify data"}
        assert record["results"]["t0_source"] == "declared"
        run_dir = tmp_path / "runs" / record["run_id"]
        # the shared T0 precedes the run, so the RTO spans at least from T0 to the start
        started = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
        assert record["results"]["rto_s"] >= (started - now).total_seconds()
        assert (run_dir / "record.sig").is_file()
        verified = drdrill(tmp_path, "verify", str(run_dir))
        assert verified.returncode == 0, verified.stderr
        run_dirs[name] = run_dir
    tampered = tmp_path / "tampered-bank-a"
    shutil.copytree(run_dirs["bank-a"], tampered)
    text = (tampered / "record.json").read_text()
    (tampered / "record.json").write_text(text.replace('"status": "', '"status": "x', 1))
    verified = drdrill(tmp_path, "verify", str(tampered))
    assert verified.returncode == 1 and "record.sig" in verified.stderr
    merged = drdrill(tmp_path, "exercise", "merge", "-m", "exercise.yml",
                     str(run_dirs["bank-a"]), str(run_dirs["bank-b"]), str(tampered),
                     "-o", "out/report.html")
    assert merged.returncode == 1
    assert merged.stderr.startswith(f"REFUSED: {tampered}: tampered: ")
    assert merged.stderr.count("REFUSED") == 1
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {r["participant"]: r for r in doc["matrix"]}
    for name in ("bank-a", "bank-b"):
        assert rows[name]["run_id"] == run_dirs[name].name
        assert {c: v["outcome"] for c, v in rows[name]["checks"].items()} == dict.fromkeys(
            ("reach_backup_site", "test_transaction", "verify_data", "rto", "rpo"), "ok")
    assert rows["bank-c"]["status"] == "no result"
    assert doc["aggregate"]["completed_pct"]["verify_data"] == pytest.approx(66.7)
    anon = (tmp_path / "out" / "report.anon.html").read_text()
    assert "bank-" not in anon and "P3" in anon


def _kill_inside(proc: subprocess.Popen[str], runs: Path, step: str) -> Path:
    """SIGKILL ``proc`` once ``step`` has started (its playbook is running); the run dir."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        for journal in runs.glob("*/journal.jsonl"):
            lines = journal.read_text().splitlines()
            if any(json.loads(line).get("data", {}).get("name") == step
                   and json.loads(line)["type"] == "step_started" for line in lines[:-1]):
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                return journal.parent
        time.sleep(0.01)
    raise AssertionError(f"{step!r} never started (rc={proc.poll()})")


def test_a_resumed_exercise_run_is_signed_again(tmp_path: Path) -> None:
    """drdrill dies mid-run; ``resume`` rewrites record.json, so it signs it again — with
    the key the run was started with, checked before anything runs."""
    runbook = workspace(tmp_path)
    for name in ("bank-a", "bank-b"):
        assert drdrill(tmp_path, "exercise", "keygen", name, "-o", "keys").returncode == 0
    now = datetime.now(tz=UTC)
    made = drdrill(tmp_path, "exercise", "init", "--id", "ex-resume", "--scenario", "site lost",
                   "--t0", iso(now), "--t0-source", "declared", "--window",
                   f"{iso(now - timedelta(minutes=5))}/{iso(now + timedelta(hours=1))}",
                   "--participant", "bank-a=keys/bank-a.pub",
                   "--participant", "bank-b=keys/bank-b.pub",
                   "--rto", "5m", "--rpo", "1s", "-o", "exercise.yml")
    assert made.returncode == 0, made.stderr
    env = {**os.environ, "DRDRILL_RUNS_DIR": str(tmp_path / "runs"),
           "DRDRILL_LOCK_DIR": str(tmp_path / "lock"), "DRDRILL_LAB_DIR": str(tmp_path / "lab"),
           "DRDRILL_EXERCISE_KEY": str(tmp_path / "keys" / "bank-a.key")}
    proc = subprocess.Popen([DRDRILL, "run", str(runbook), "-i", "inv.yml", "--exercise",
                             "exercise.yml", "--participant", "bank-a", "--yes"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    run_dir = _kill_inside(proc, tmp_path / "runs", "bring the service up on the standby")
    assert not (run_dir / "record.json").exists() and not (run_dir / "record.sig").exists()
    resume = ("resume", str(run_dir), "--assume", "redo", "--yes")
    unkeyed = drdrill(tmp_path, *resume)
    assert unkeyed.returncode == 2 and "bank-a in exercise ex-resume" in unkeyed.stderr, \
        unkeyed.stderr
    foreign = drdrill(tmp_path, *resume, key=tmp_path / "keys" / "bank-b.key")
    assert foreign.returncode == 2 and "not the key this run was started with" in \
        foreign.stderr, foreign.stderr
    assert not (run_dir / "record.json").exists()  # both refused before anything ran
    done = drdrill(tmp_path, *resume, "--json", key=tmp_path / "keys" / "bank-a.key")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert [e for e in read_events(run_dir / "journal.jsonl") if e.type == "resumed"]
    sig = json.loads((run_dir / "record.sig").read_text())
    assert sig["participant"] == "bank-a" and \
        sig["journal_last_hash"] == record["journal_last_hash"]
    verified = drdrill(tmp_path, "verify", str(run_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    merged = drdrill(tmp_path, "exercise", "merge", "-m", "exercise.yml", str(run_dir),
                     "-o", "out/report.html")
    assert "REFUSED" not in merged.stderr, merged.stderr
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {r["participant"]: r["run_id"] for r in doc["matrix"]}["bank-a"] == run_dir.name
