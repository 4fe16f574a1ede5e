"""The PostgreSQL failover drill over SSH: drills/postgres-failover.yml's steps and
playbooks, run by ansible over SSH (host-key checking on, warm ControlPersist connections)
against a primary in namespace db1 and its standby in db2, from an inventory that differs
from inventory.example.yml only in connection details."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drdrill.engine.runner import RunOptions, run_drill
from harness.drills import (
    control_dir,
    pg_inventory,
    ssh_leftovers,
)
from harness.netns import NetnsHarness
from harness.pg import PgPair, missing_postgres

pytestmark = pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))

ROOT = Path(__file__).resolve().parents[3]

SHIPPED_DRILL = ROOT / "drills" / "postgres-failover.yml"


def test_inventory_differs_from_the_example_only_in_connection_details(
        pg_hosts: tuple[NetnsHarness, PgPair], tmp_path: Path) -> None:
    harness, pg = pg_hosts
    ours = yaml.safe_load(pg_inventory(harness, pg, tmp_path / "inv.yml").read_text())
    example = yaml.safe_load((ROOT / "inventory.example.yml").read_text())
    # same groups, nested the same way
    assert ours["all"]["children"]["postgres"]["children"].keys() == \
        example["all"]["children"]["postgres"]["children"].keys()
    # every pg_* variable the example sets is set; the rest is connection details
    example_pg = {k for k in example["all"]["vars"] if k.startswith("pg_")}
    ours_vars = dict(ours["all"]["vars"])
    for group in ours["all"]["children"]["postgres"]["children"].values():
        for host_vars in group["hosts"].values():
            names = set(ours_vars) | set(host_vars)
            assert example_pg <= names
            extra = {n for n in names - set(example["all"]["vars"])
                     if not n.startswith("ansible_")}
            assert extra == {"pg_node_settings"}  # listen address + socket dir per node
            assert host_vars["ansible_host"] == host_vars["pg_host"]


def test_failover_drill_over_ssh_loses_no_write(pg_hosts: tuple[NetnsHarness, PgPair],
                                                tmp_path: Path) -> None:
    harness, pg = pg_hosts
    inventory = pg_inventory(harness, pg, tmp_path / "inventory.yml")
    runbook = SHIPPED_DRILL  # unedited: the inventory defines its {{ service_dsn }}
    result = run_drill(RunOptions(runbook, inventory, yes=True, runs_dir=tmp_path / "runs"))

    record = result.record
    failed = [s for s in record["steps"] if s["status"] != "ok"]
    assert result.exit_code == 0, (record["status"], failed)
    assert record["status"] == "passed"
    results = record["results"]
    assert results["lost_writes"] == 0
    assert results["rto_met"] and results["rpo_met"]
    names = [s["name"] for s in record["steps"]]
    original = yaml.safe_load((ROOT / "drills" / "postgres-failover.yml").read_text())
    # the same steps as the lab's drill (a parallel group's members are steps of their own)
    shipped = [m["name"] for s in original["steps"] for m in s.get("parallel", [s])]
    assert sorted(names) == sorted(shipped)

    events = [json.loads(line) for line in
              (result.run_dir / "journal.jsonl").read_text().splitlines()]
    # preflight checked both hosts over SSH, and every playbook task ran on a namespace host
    connections = [e for e in events if e["type"] == "connections"]
    assert connections and set(connections[0]["data"]["first_connect_s"]) == {"db1", "db2"}
    task_hosts = {e["data"]["host"] for e in events
                  if e["type"] == "task" and e["data"].get("host")}
    assert task_hosts == {"db1", "db2"}
    # Ansible's connections were opened before T0 (warm-up), so the steps on the RTO path
    # paid no SSH handshake; each step journals how its first contact with each host went
    assert connections[0]["data"]["ansible_warm_up_s"] is not None
    contacts = {e["data"]["step"]: e["data"]["hosts"] for e in events
                if e["type"] == "step_connections"}
    assert contacts["fence the old primary"]["db1"]["warm"] is True
    assert contacts["crash the primary"]["db1"]["warm"] is True
    assert isinstance(contacts["fence the old primary"]["db1"]["first_task_s"], float)
    # the promote is a command step: one argv on db2, through the run's paramiko session
    promoted = [e["data"] for e in events
                if e["type"] == "command" and e["data"]["step"] == "promote the standby"]
    assert [(d["host"], d["status"], d["rc"]) for d in promoted] == [("db2", "ok", 0)]
    # failed back: db1 is the primary again and db2 streams from it across the veths
    row = pg.wait_streaming()
    assert row["client_addr"] == harness.address("db2")
    # the run ended its ControlPersist masters and every ssh/ansible process
    assert ssh_leftovers(str(harness.dir), control_dir(result.run_dir)) == []
    print(f"\nfailover over SSH: RTO {results['rto_s']:.2f}s, downtime "
          f"{results['downtime_s']}, lost writes {results['lost_writes']}")
