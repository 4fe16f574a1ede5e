"""Incident mode in a real outage, on the lab: the primary is killed outside drdrill
(``pg_ctl -m immediate stop``), some seconds later the shipped failover runbook is run with
``--mode incident --declared-at <kill instant> --yes``, exactly as an on-call engineer would.

Ground truth comes from the test's own client (psycopg, its own loop) and from the database
itself (pg2's ``pg_last_xact_replay_timestamp()`` read by the test before drdrill runs). Each
test gets a fresh lab on this module's ports (57401/57402) and purges it afterwards.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drdrill.lab import LabConfig, lab_down, lab_up, service_dsn
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]
skip_without_postgres()

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(Path(sys.executable).parent / "drdrill")
DRILL = ROOT / "drills" / "postgres-failover.yml"
INVENTORY = ROOT / "inventory.example.yml"
WAIT_S = 4.0
DRILL_ONLY = ("replication is streaming", "business workload", "crash the primary",
              "reprotect - rewind the old primary into a standby",
              "failback - switch back to pg1", "replication is streaming again")


@dataclass
class Lab:
    config: LabConfig
    base: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DRDRILL_LAB_DIR": str(self.config.lab_dir),
                "DRDRILL_LOCK_DIR": str(self.base / "locks"),
                "DRDRILL_RUNS_DIR": str(self.base / "runs")}

    def lab_env(self) -> dict[str, Any]:
        return dict(json.loads((self.config.lab_dir / "lab.env.json").read_text()))

    def pg_ctl(self, node: str, *args: str) -> None:
        env = self.lab_env()
        argv = [*env["run_as"], f"{env['bin_dir']}/pg_ctl", "-D",
                env["nodes"][node]["data"], *args]
        subprocess.run(argv, check=True, capture_output=True, cwd="/", timeout=60)

    def node_dsn(self, port: int) -> str:
        return f"host=127.0.0.1 port={port} dbname=drdrill user=postgres connect_timeout=2"


@pytest.fixture
def lab() -> Iterator[Lab]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-incident-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", 57401, 57402)
    try:
        status = lab_up(config)
        assert status.healthy, status.to_json()
        yield Lab(config, base)
    finally:
        lab_down(config, purge=True)  # "lab repair" is not there yet: rebuild per test
        shutil.rmtree(base, ignore_errors=True)


class Client:
    """The test's own client: `insert` every 50 ms through the service DSN; remembers the
    wall time of the first acknowledged write (its own view of service restored)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.first_ack: float | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set() and self.first_ack is None:
            started = time.time()
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute("create table if not exists t_client (at double precision)")
                    conn.execute("insert into t_client values (%s)", (started,))
                self.first_ack = started  # the attempt's start, as drdrill's probe counts
            except psycopg.Error:
                self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


def _kill_primary(lab: Lab) -> tuple[datetime, float]:
    """Commit a row on pg1 and wait until pg2 replayed it, then kill pg1. Returns the kill
    instant and pg2's own last replayed commit time (epoch) read after the kill. First the
    business workload (the shipped playbook) so there is a ledger to reconcile."""
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                    str(INVENTORY), str(ROOT / "playbooks" / "pg-workload.yml"),
                    "-e", "drdrill_hosts=pg1", "-e", "workload_txns=20"],
                   check=True, capture_output=True, env=lab.env, timeout=120)
    with psycopg.connect(lab.node_dsn(57401), autocommit=True) as conn:
        conn.execute("create table if not exists t_before (at timestamptz default now())")
        lsn = conn.execute("insert into t_before default values returning "
                           "pg_current_wal_lsn()").fetchone()
    assert lsn is not None
    with psycopg.connect(lab.node_dsn(57402), autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn",
                               (str(lsn[0]),)).fetchone()
            if row is not None and row[0]:
                break
            time.sleep(0.05)
    killed = datetime.now(tz=UTC)
    lab.pg_ctl("pg1", "-m", "immediate", "-w", "stop")
    with psycopg.connect(lab.node_dsn(57402), autocommit=True) as conn:
        row = conn.execute("select extract(epoch from pg_last_xact_replay_timestamp())"
                           ).fetchone()
    assert row is not None and row[0] is not None
    return killed, float(row[0])


def _run(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, "run", *args], capture_output=True, text=True,
                          env=lab.env, cwd=lab.base, stdin=subprocess.DEVNULL, timeout=400,
                          check=False)


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _promoted(lab: Lab) -> bool:
    with psycopg.connect(lab.node_dsn(57402), autocommit=True) as conn:
        row = conn.execute("select not pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def test_incident_run_recovers_a_dead_primary(lab: Lab) -> None:
    killed, replayed = _kill_primary(lab)
    client = Client(service_dsn(lab.config))
    time.sleep(WAIT_S)
    try:
        done = _run(lab, str(DRILL), "-i", str(INVENTORY), "--mode", "incident",
                    "--declared-at", _iso(killed), "--yes", "--json")
    finally:
        client.stop()
    assert done.returncode in (0, 1), done.stderr[-3000:]
    record = json.loads(done.stdout)
    run_dir = lab.base / "runs" / record["run_id"]
    journal = _journal(run_dir)
    res = record["results"]
    print(f"\nincident: exit {done.returncode}; RTO {res['rto_s']}s from the declared "
          f"instant; RPO bound {res['rpo_bound_s']}s ({res['rpo_basis']}); steps "
          f"{[(s['name'], s['status']) for s in record['steps']]}; {res['rpo_reason']}; "
          f"{[e['data'] for e in journal if e['type'] == 'fact']}")
    # the service is back, on pg2, and the test's own client got a write through
    assert _promoted(lab)
    assert client.first_ack is not None
    # RTO counted from the declared instant, and it agrees with the test's own client
    assert res["t0_source"] == "declared"
    assert res["rto_s"] is not None and res["rto_s"] >= WAIT_S
    truth = client.first_ack - killed.timestamp()
    assert abs(res["rto_s"] - truth) <= 0.2 + 0.5, (res["rto_s"], truth)  # probe interval
    # the drill-only steps were not run; no rollback was
    names = [s["name"] for s in record["steps"]]
    assert not set(DRILL_ONLY) & set(names), names
    assert {"fence the old primary", "promote the standby", "wait for service"} <= set(names)
    assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
    assert not [e for e in journal if e["type"].startswith("rollback_started")]
    # the RPO bound: T0 minus pg2's last replayed commit, as the test read it itself
    assert res["rpo_basis"] == "bound" and res["rpo_s"] is None
    assert res["rpo_bound_s"] == pytest.approx(killed.timestamp() - replayed, abs=0.01)
    # the canary started with the service down and counted from its return
    assert any(e["type"] == "canary_ready" for e in journal)
    assert res["acked_writes"] > 0 and res["lost_writes"] == 0
    # the old primary is fenced: it would come back read-only
    assert (Path(lab.lab_env()["nodes"]["pg1"]["data"]) / "standby.signal").exists()


def test_incident_failure_hands_off_and_from_continues(lab: Lab) -> None:
    killed, _ = _kill_primary(lab)
    lab.pg_ctl("pg2", "-m", "fast", "-w", "stop")  # promotion cannot work: a failure
    time.sleep(1.0)
    first = _run(lab, str(DRILL), "-i", str(INVENTORY), "--mode", "incident",
                 "--declared-at", _iso(killed), "--yes", "--operator", "alice")
    output = first.stdout + first.stderr
    print(f"\nhand-off (exit {first.returncode}):\n{output[-1500:]}")
    assert first.returncode == 3, output[-3000:]
    run1 = sorted((lab.base / "runs").iterdir())[0]
    journal1 = _journal(run1)
    assert not [e for e in journal1 if e["type"] == "rollback_started"]
    assert any(e["type"] == "rollback_skipped" for e in journal1)
    handoff = next(e["data"] for e in journal1 if e["type"] == "incident_handoff")
    assert handoff["failed_step"] == "promote the standby"
    assert handoff["last_completed"] == "fence the old primary"
    assert "connection to server" in handoff["error"]  # the task's own message
    assert "last completed step: fence the old primary" in output
    line = next(ln.strip() for ln in output.splitlines() if "--from" in ln)
    argv = shlex.split(line)
    assert argv[:2] == ["drdrill", "run"]
    argv[0] = DRDRILL  # the venv's, as PATH may not have it
    assert argv[argv.index("--from") + 1] == "promote the standby"
    assert argv[argv.index("--operator") + 1] == "alice"
    assert argv[argv.index("--runs-dir") + 1] == str(run1.parent)  # continues in the same dir

    log = f"{lab.lab_env()['log_dir']}/pg2.log"
    lab.pg_ctl("pg2", "-l", log, "-w", "start")  # the operator fixes the cause
    second = subprocess.run([*argv, "--yes", "--json"], capture_output=True, text=True,
                            env=lab.env, cwd=lab.base, stdin=subprocess.DEVNULL,
                            timeout=400, check=False)
    assert second.returncode in (0, 1), second.stderr[-3000:]
    record = json.loads(second.stdout)
    journal2 = _journal(lab.base / "runs" / record["run_id"])
    outside = [e["data"] for e in journal2 if e["type"] == "step_done_outside"]
    assert [(d["name"], d["by"]) for d in outside] == [("fence the old primary", "alice")]
    assert record["steps"][0]["name"] == "promote the standby"
    assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
    t0 = next(e for e in journal2 if e["type"] == "t0")
    origin = datetime.fromisoformat(journal2[0]["wall"].replace("Z", "+00:00")).timestamp() \
        - journal2[0]["mono"]
    assert origin + t0["mono"] == pytest.approx(killed.timestamp(), abs=0.01)  # same T0
    assert _promoted(lab)
    print(f"--from run: exit {second.returncode}; RTO {record['results']['rto_s']}s; "
          f"RPO bound {record['results']['rpo_bound_s']}s")
