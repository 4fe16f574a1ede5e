"""SIGKILL a real `drdrill run` inside the steps of the SHIPPED drills (drills/postgres-
failover.yml, drills/postgres-restore.yml, with their whole playbooks/ directory: vars
files, included task files) on a real PostgreSQL lab, then `drdrill resume RUN`.

To stay within a few minutes, one run is killed again and again: the run is killed inside
step N, `drdrill resume --assume redo|done --yes` continues it, and that resume process is
killed inside step N+1, and so on; the last resume runs to the end. Each resume runs the
steps from the run's snapshot (runbook/), not from the working tree. After each kill the
evidence so far is intact (verify finds only the missing record.json of an unfinished
run). At the end: every main step finished exactly once and ok, no acknowledged canary
write lost (failover; checked against the database itself too), `drdrill verify` intact,
the evidence bundle verifies, and the lab is back to pg1 primary -> pg2 standby.

The restore drill's rollback (policy: always) is killed too: a rollback step in flight is
asked about like a main step (exit 2 without --assume), then redone.

Lab on this module's own ports 57201/57202 (restored instance: pg1's port + 10 = 57211).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from crashkit import DRDRILL, Lines, cli, complete_lines, live_processes, run_dir_of, start

from drdrill.journal.verify import verify_run
from drdrill.lab import LabConfig, lab_down, lab_status, lab_up
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventory.example.yml"
P1, P2 = 57201, 57202

skip_without_postgres()


@dataclass(frozen=True)
class Kill:
    step: str  # kill once this step has started ...
    delay_s: float  # ... and this long after (mid-step), or once ``task`` started
    assume: str
    task: str | None = None  # "checkpoint name": kill right after the task stamped it
    phase: str = "main"


@dataclass
class Env:
    base: Path
    config: LabConfig
    runs_name: str = "runs"  # one runs dir per test: run_dir_of() wants the only run

    @property
    def env(self) -> dict[str, str]:
        return {"DRDRILL_LAB_DIR": str(self.config.lab_dir),
                "DRDRILL_LOCK_DIR": str(self.base / "locks"),
                "DRDRILL_RUNS_DIR": str(self.runs)}

    @property
    def runs(self) -> Path:
        return self.base / self.runs_name


REPORT: list[str] = []


@pytest.fixture(scope="module")
def lab() -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-crashdrills-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", P1, P2)
    try:
        _healthy(lab_up(config))
        yield Env(base, config)
    finally:
        lab_down(config, purge=True)
        if not os.environ.get("DRDRILL_KEEP_RUNS"):  # keep them to look at a failure
            shutil.rmtree(base, ignore_errors=True)
        print("\n" + "\n".join(REPORT))


def _healthy(status: Any) -> None:
    assert status.healthy, status.to_json()
    assert status.primary is not None and status.primary.name == "pg1", status.to_json()


def _back_to_pg1(lab: Env) -> None:
    """pg1 primary -> pg2 streaming, or the lab is rebuilt (`lab repair` when it exists)."""
    status = lab_status(lab.config)
    if status.healthy and status.primary is not None and status.primary.name == "pg1":
        return
    repaired = subprocess.run([DRDRILL, "lab", "repair"], capture_output=True, text=True,
                              env={**_os_env(), **lab.env}, check=False, timeout=300)
    if repaired.returncode != 0:
        lab_down(lab.config, purge=True)
    _healthy(lab_up(lab.config))


def _os_env() -> dict[str, str]:
    return dict(os.environ)


def _fired(lines: Lines, offset: int, kill: Kill) -> float | None:
    """The mono of the line after which to kill (None: not yet): the step's step_started
    (plus the delay, counted by the caller) or the checkpoint its task stamped."""
    for line in lines[offset:]:
        data = line["data"]
        if line["type"] == "step_started" and data.get("name") == kill.step \
                and data.get("phase", "main") == kill.phase and kill.task is None:
            return float(line["mono"])
        if kill.task and line["type"] == "checkpoint" and data.get("name") == kill.task \
                and data.get("step") == kill.step:
            return float(line["mono"])
    return None


def _kill_inside(proc: subprocess.Popen[str], lab: Env, kill: Kill, offset: int,
                 deadline_s: float = 240) -> tuple[Path, Lines]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        run_dir = run_dir_of(lab.runs)
        lines = complete_lines(run_dir / "journal.jsonl")[1] if run_dir else []
        if run_dir is not None and _fired(lines, offset, kill) is not None:
            time.sleep(kill.delay_s if kill.task is None else 0.0)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            return run_dir, complete_lines(run_dir / "journal.jsonl")[1]
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"drdrill ended (rc={proc.returncode}) before {kill}:"
                                 f"\n{out[-3000:]}\n{err[-3000:]}")
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"{kill} never fired")


def _in_flight(lines: Lines) -> tuple[str, str] | None:
    started: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line["data"].get("phase", "main"), str(line["data"].get("name")))
        if line["type"] == "step_started":
            started[key] = 1
        elif line["type"] == "step_finished":
            started.pop(key, None)
    return next(iter(started), None)


def _chain(lab: Env, drill: str, kills: list[Kill]) -> tuple[Path, list[dict[str, Any]]]:
    """Run ``drill``, killed at every point in ``kills`` and resumed after each."""
    proc = start("run", str(ROOT / "drills" / drill), "-i", str(INVENTORY), "--yes",
                 cwd=ROOT, env=lab.env)
    offset, points = 0, []
    run_dir = None
    for kill in kills:
        run_dir, lines = _kill_inside(proc, lab, kill, offset)
        landed = _in_flight(lines)
        # evidence so far intact: chain and snapshot; only the record is missing
        problems = verify_run(run_dir).problems
        assert len(problems) == 1 and "record.json: missing" in problems[0], problems
        if kill.phase == "rollback":
            _rollback_in_flight_is_asked(lab, run_dir, kill)
        points.append({"kill": kill, "landed": landed, "lines": len(lines)})
        offset = len(lines)
        proc = start("resume", str(run_dir), "--assume", kill.assume, "--yes", cwd=ROOT,
                     env=lab.env)
    out, err = proc.communicate(timeout=600)
    assert run_dir is not None
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode in (0, 1), (proc.returncode, out[-3000:], err[-3000:])
    return run_dir, points


def _rollback_in_flight_is_asked(lab: Env, run_dir: Path, kill: Kill) -> None:
    """A rollback step in flight is treated like a main step: not idempotent, so without
    --assume (and no terminal) resume exits 2 and executes nothing."""
    before = (run_dir / "journal.jsonl").read_bytes()
    done = cli("resume", str(run_dir), "--yes", cwd=ROOT, env=lab.env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"rollback step {kill.step!r} was running when drdrill died" in done.stderr
    assert (run_dir / "journal.jsonl").read_bytes() == before


def _finished(lab: Env, run_dir: Path, points: list[dict[str, Any]], drill: str
              ) -> dict[str, Any]:
    record = json.loads((run_dir / "record.json").read_text())
    events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    finished = [e["data"]["name"] for e in events if e["type"] == "step_finished"
                and e["data"].get("phase", "main") == "main"]
    assert sorted(finished) == sorted(set(finished)), finished  # each main step once
    assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
    resumed = [e for e in events if e["type"] == "resumed"]
    assert len(resumed) == len(points)
    # the status: passed, unless the only miss is the RTO (the dead time of a kill on the
    # RTO path is part of the outage clients saw, and this machine may be slow)
    reason = str(record.get("reason") or "")
    assert record["status"] == "passed" or (
        record["status"] == "failed" and reason == "RTO objective missed"), (
        record["status"], reason)
    verified = cli("verify", str(run_dir), cwd=ROOT, env=lab.env)
    assert verified.returncode == 0, verified.stderr
    bundle = lab.base / f"{run_dir.name}.tar.gz"
    made = cli("report", str(run_dir), "--format", "bundle", "-o", str(bundle), cwd=ROOT,
               env=lab.env)
    assert made.returncode == 0, made.stderr
    checked = cli("verify", str(bundle), cwd=ROOT, env=lab.env)
    assert checked.returncode == 0, checked.stderr
    assert not live_processes(f"{run_dir.resolve()}/")
    res = record["results"]
    for point in points:
        kill = point["kill"]
        REPORT.append(f"{drill}: kill in {kill.phase} {kill.step!r} "
                      f"({kill.task or f'+{kill.delay_s}s'}) landed in {point['landed']} "
                      f"-> resume --assume {kill.assume}")
    REPORT.append(f"{drill}: after {len(points)} kills -> {record['status']} "
                  f"({reason or 'all met'}), RTO {res['rto_s']}s, lost writes "
                  f"{res['lost_writes']} of {res['acked_writes']}, verify intact, "
                  "bundle verifies")
    return record


FAILOVER_KILLS = [
    Kill("replication is streaming", 1.0, "redo"),
    Kill("business workload", 1.0, "redo"),
    Kill("crash the primary", 0.0, "done", task="t0_task"),  # after the effect: done
    # fence and promote run in one parallel group: kill at the promote's start (a 0.6 s
    # command step: both members in flight), then 1 s into the re-run fence
    Kill("promote the standby", 0.0, "redo"),
    Kill("fence the old primary", 1.0, "redo"),
    Kill("wait for service", 0.0, "redo"),
    Kill("reconcile the ledger", 1.0, "redo"),
    # the notify and manual steps last milliseconds: no kill lands inside them
    # "done" only where a journaled task proves the effect: a kill 3 s into failback can
    # land before ansible-playbook has even started (no orphan to finish it)
    Kill("reprotect - rewind the old primary into a standby", 1.5, "redo"),
    Kill("failback - switch back to pg1", 1.0, "redo"),
    Kill("replication is streaming again", 1.0, "redo"),
]


def test_failover_killed_in_every_step_resumes_to_passed(lab: Env) -> None:
    _back_to_pg1(lab)
    lab.runs_name = "runs-failover"
    run_dir, points = _chain(lab, "postgres-failover.yml", FAILOVER_KILLS)
    record = _finished(lab, run_dir, points, "postgres-failover")
    assert record["results"]["lost_writes"] == 0
    assert record["results"]["acked_writes"] > 0
    events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    acked = {int(e["data"]["seq"]) for e in events
             if e["type"] == "canary_write" and e["data"]["acked"]}
    assert len(acked) == record["results"]["acked_writes"]
    with psycopg.connect(f"host=127.0.0.1 port={P1} dbname=drdrill user=postgres",
                         autocommit=True) as conn:  # the database itself, not drdrill
        rows = {int(r[0]) for r in conn.execute("select seq from drdrill_canary")}
    assert acked <= rows, sorted(acked - rows)[:10]
    status = lab_status(lab.config)
    _healthy(status)


RESTORE_KILLS = [
    Kill("base backup", 2.0, "redo"),
    Kill("operator error - DROP TABLE drdrill_ledger", 0.0, "done", task="operator_error"),
    Kill("stop the damage - fence the damaged primary (after flushing its WAL archive)",
         1.0, "redo"),
    Kill("restore to the restore point into a new instance, paused there read-only", 2.0,
         "redo"),
    Kill("reconcile the restored ledger against the restore point", 1.0, "redo"),
    Kill("switch the service - open the restored instance for writes", 1.0, "redo"),
    Kill("the restored instance takes pg1's place, pg2 rejoins it", 3.0, "redo",
         phase="rollback"),
]


def test_restore_killed_on_the_rto_path_and_in_rollback_resumes(lab: Env) -> None:
    _back_to_pg1(lab)
    lab.runs_name = "runs-restore"
    run_dir, points = _chain(lab, "postgres-restore.yml", RESTORE_KILLS)
    record = _finished(lab, run_dir, points, "postgres-restore")
    assert record["results"]["rpo_met"] is True
    events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    rollback = [e for e in events if e["type"] == "rollback_finished"]
    assert [e["data"]["status"] for e in rollback] == ["ok"]
    _healthy(lab_status(lab.config))
