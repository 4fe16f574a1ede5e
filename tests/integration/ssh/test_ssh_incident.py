"""Incident mode on SSH hosts (network namespaces): the primary (db1) is already dead —
its PostgreSQL killed, or its network cut so it is unreachable — and the SHIPPED failover
runbook, unedited, is run with ``-i`` the hosts' inventory, ``--mode incident --declared-at
<kill instant> --yes``. The inventory is inventory.example.yml's shape over SSH, plus the
``service_dsn`` the shipped runbook's probes use. Ground truth: pg2's own state, queried by
the test. Run these under ``flock /tmp/drdrill-netns.lock``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.drills import pg_inventory
from harness.netns import NetnsHarness
from harness.pg import PG_BIN, PG_USER, PgPair, missing_postgres

pytestmark = [pytest.mark.skipif(missing_postgres() is not None,
                                 reason=str(missing_postgres())), pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[3]
DRDRILL = str(Path(sys.executable).parent / "drdrill")
WAIT_S = 3.0


def _inventory(harness: NetnsHarness, pg: PgPair, path: Path) -> Path:
    """inventory.example.yml's shape over SSH; pg_inventory defines service_dsn."""
    return pg_inventory(harness, pg, path)


def _workload(inventory: Path, env: dict[str, str]) -> None:
    """The business data the runbook reconciles after failover (the shipped playbook)."""
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                    str(inventory), str(ROOT / "playbooks" / "pg-workload.yml"),
                    "-e", "drdrill_hosts=db1", "-e", "workload_txns=20"],
                   check=True, capture_output=True, env=env, timeout=180)


def _standby_writable(pg: PgPair) -> bool:
    with psycopg.connect(pg.standby.dsn(), autocommit=True) as conn:
        row = conn.execute("select not pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def _run_incident(harness: NetnsHarness, pg: PgPair, tmp_path: Path,
                  outage: Callable[[], None]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    env = {**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks"),
           "DRDRILL_RUNS_DIR": str(tmp_path / "runs")}
    inventory = _inventory(harness, pg, tmp_path / "inventory.yml")
    _workload(inventory, env)
    killed = datetime.now(tz=UTC)
    outage()
    time.sleep(WAIT_S)
    done = subprocess.run(
        [DRDRILL, "run", str(ROOT / "drills" / "postgres-failover.yml"), "-i", str(inventory),
         "--mode", "incident", "--declared-at", killed.isoformat(), "--yes", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
        timeout=400, check=False)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    record = json.loads(done.stdout)
    journal = [json.loads(line) for line in
               (tmp_path / "runs" / record["run_id"] / "journal.jsonl").read_text()
               .splitlines()]
    res = record["results"]
    assert res["t0_source"] == "declared" and res["rto_s"] >= WAIT_S
    assert _standby_writable(pg)
    assert not [e for e in journal if e["type"] == "rollback_started"]
    names = {s["name"] for s in record["steps"]}
    assert "crash the primary" not in names and "business workload" not in names
    assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
    assert res["rpo_basis"] == "bound" and res["rpo_bound_s"] is not None
    print(f"\nincident over SSH: exit {done.returncode}; RTO {res['rto_s']}s from the "
          f"declared instant; RPO bound {res['rpo_bound_s']}s; steps {sorted(names)}")
    return done.returncode, record, journal


def _fence_fact(journal: list[dict[str, Any]]) -> str:
    return next(str(e["data"]["value"]) for e in journal
                if e["type"] == "fact" and e["data"]["name"] == "fence")


def test_incident_on_ssh_hosts_with_the_primary_killed(
        pg_hosts: tuple[NetnsHarness, PgPair], tmp_path: Path) -> None:
    harness, pg = pg_hosts

    def kill() -> None:
        harness.ns_exec("db1", [str(PG_BIN / "pg_ctl"), "-D", str(pg.primary.data), "-m",
                                "immediate", "-w", "stop"], user=PG_USER, timeout=30)

    _, _, journal = _run_incident(harness, pg, tmp_path, kill)
    assert "fenced" in _fence_fact(journal)
    assert (pg.primary.data / "standby.signal").exists()


def test_incident_on_ssh_hosts_with_the_primary_unreachable(
        pg_hosts: tuple[NetnsHarness, PgPair], tmp_path: Path) -> None:
    harness, pg = pg_hosts
    try:
        _, _, journal = _run_incident(harness, pg, tmp_path, lambda: harness.partition("db1"))
        fact = _fence_fact(journal)
        print(f"fence: {fact}")
        assert "unreachable" in fact and "NOT fenced now" in fact
        assert any(e["type"] == "preflight_ignored" for e in journal)
    finally:
        harness.heal("db1")
