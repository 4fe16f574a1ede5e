"""Ctrl-C (the run's cancel event, as drdrill run's SIGINT handler sets it) at the start of
"promote the standby" in the failover drill over SSH: the rollback's playbooks use inventory
variables only, so over SSH too they finish the failover (db2 promoted, since db1 is fenced),
rejoin db1 as db2's streaming standby, and journal that the roles are swapped."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.events import Event
from harness.drills import control_dir, pg_inventory, ssh_leftovers
from harness.netns import NetnsHarness
from harness.pg import PgPair, missing_postgres

pytestmark = pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))

SHIPPED_DRILL = Path(__file__).resolve().parents[3] / "drills" / "postgres-failover.yml"


class _CancelAt:
    """An event handler: sets ``cancel`` when the named main step starts."""

    def __init__(self, step: str, cancel: threading.Event) -> None:
        self.step, self.cancel = step, cancel

    def handle(self, event: Event) -> None:
        if (event.type == "step_started" and event.data.get("name") == self.step
                and event.data.get("phase") == "main"):
            self.cancel.set()


def test_ctrl_c_during_promote_over_ssh_rolls_back_to_a_swapped_pair(
        pg_hosts: tuple[NetnsHarness, PgPair], tmp_path: Path) -> None:
    harness, pg = pg_hosts
    inventory = pg_inventory(harness, pg, tmp_path / "inventory.yml")
    runbook = SHIPPED_DRILL  # unedited: the inventory defines its {{ service_dsn }}
    cancel = threading.Event()
    result = run_drill(RunOptions(runbook, inventory, yes=True, runs_dir=tmp_path / "runs"),
                       handlers=[_CancelAt("promote the standby", cancel)], cancel=cancel)

    record = result.record
    assert result.exit_code == 3, record["status"]
    rollback = [s for s in record["steps"] if s["phase"] == "rollback"]
    assert [s["status"] for s in rollback] == ["ok", "ok"], rollback
    events = [json.loads(line) for line in
              (result.run_dir / "journal.jsonl").read_text().splitlines()]
    facts = {e["data"]["name"]: e["data"]["value"] for e in events if e["type"] == "fact"}
    assert facts.get("primary") == "db2" and facts.get("roles_swapped") == "db2", facts
    # the database agrees: db2 takes writes and db1 streams from it across the veths
    with psycopg.connect(pg.standby.dsn(), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("select not pg_is_in_recovery(), "
                           "(select string_agg(host(client_addr), ',') from pg_stat_replication"
                           " where state = 'streaming')").fetchone()
    assert row == (True, harness.address("db1")), row
    assert ssh_leftovers(str(harness.dir), control_dir(result.run_dir)) == []
