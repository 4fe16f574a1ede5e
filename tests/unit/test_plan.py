"""`plan`: ordered steps per mode, hosts after role resolution, and the RTO-path budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drdrill.engine.plan import build_plan
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.loader import load_runbook

RUNBOOK = """\
version: 1
name: planned
objectives: {rto: 30s, rpo: 0s}
roles: {primary: db_primary, standby: db_standby}
steps:
  - {name: check, pause: 1s}
  - {name: crash, playbook: p.yml, role: primary, disaster: true, only: [drill], timeout: 10s}
  - {name: promote, playbook: p.yml, role: standby, timeout: 20s, retries: 1, retry_delay: 2s}
  - {name: back, pause: 3s, checkpoint: service_restored}
  - {name: after, playbook: p.yml, role: standby, timeout: 100s}
rollback:
  steps:
    - {name: undo, playbook: p.yml, role: primary, timeout: 5s}
"""
INVENTORY = """\
all:
  children:
    db_primary: {hosts: {a1: {ansible_connection: local}}}
    db_standby: {hosts: {b1: {ansible_connection: local}, b2: {ansible_connection: local}}}
"""


def _write(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "drills").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    runbook = tmp_path / "drills" / "planned.yml"
    runbook.write_text(RUNBOOK)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    return runbook, inventory


def test_plan_resolves_hosts_and_sums_the_rto_path(tmp_path: Path) -> None:
    runbook_path, inventory_path = _write(tmp_path)
    inventory = load_inventory(inventory_path)
    plan = build_plan(load_runbook(runbook_path, inventory), inventory, "drill")
    names = [p.step.name for p in plan.steps]
    assert names == ["check", "crash", "promote", "back", "after"]
    hosts = {p.step.name: p.hosts for p in plan.steps}
    assert hosts["crash"] == ("a1",) and set(hosts["promote"]) == {"b1", "b2"}
    on_path = [p.step.name for p in plan.steps if p.on_rto_path]
    assert on_path == ["promote", "back"]  # after T0, up to service_restored
    assert plan.rto_path_budget_s == 20 * 2 + 2 + 3  # two attempts, one retry delay, pause
    assert any("45s, more than the RTO objective of 30s" in w for w in plan.warnings)
    assert [p.step.name for p in plan.rollback] == ["undo"]


def test_incident_mode_skips_drill_only_steps(tmp_path: Path) -> None:
    runbook_path, inventory_path = _write(tmp_path)
    inventory = load_inventory(inventory_path)
    plan = build_plan(load_runbook(runbook_path, inventory), inventory, "incident")
    assert "crash" not in [p.step.name for p in plan.steps]
    # incident mode: T0 is declared before the first step, so the path starts at once
    assert [p.step.name for p in plan.steps if p.on_rto_path] == ["check", "promote", "back"]


def test_plan_cli_prints_steps_and_warning(tmp_path: Path) -> None:
    runbook_path, inventory_path = _write(tmp_path)
    drdrill = str(Path(sys.executable).parent / "drdrill")
    done = subprocess.run([drdrill, "plan", str(runbook_path), "-i", str(inventory_path)],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "DISASTER (T0)" in done.stdout and "b1,b2" in done.stdout
    assert "warning: the timeouts of the steps between T0 and service restored" in done.stdout


ROOT = Path(__file__).resolve().parents[2]


def test_plan_isolated_shows_the_clone_build_the_clone_steps_and_the_teardown(
        tmp_path: Path) -> None:
    """plan --isolated plans what run --isolated executes: the build before T0, only the
    steps that run isolated (on the clone's host), the teardown; a runbook without an
    isolation: section is refused as run --isolated refuses it."""
    drdrill = str(Path(sys.executable).parent / "drdrill")
    env = {"COLUMNS": "250", "PATH": "/usr/bin:/bin", "DRDRILL_LAB_DIR": str(tmp_path / "lab")}

    def plan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([drdrill, "plan", *args, "--runs-dir", str(tmp_path / "runs")],
                              capture_output=True, text=True, check=False, timeout=60,
                              env=env, cwd=ROOT)

    done = plan("drills/postgres-failover.yml", "-i", "inventory.example.yml", "--isolated")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("ISOLATED TEST — production is not failed over")
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    labels = [r[0] for r in rows[1:]]
    assert labels == ["B1", "5", "6", "7", "T1"], out
    acting = [line for line in out.splitlines()
              if line.startswith("  ") and (" playbook " in line or " command " in line)]
    assert acting and all("pg2-clone" in line for line in acting), out
    assert "RTO path" in next(line for line in acting if "promote the standby" in line)
    assert "no step is marked disaster" not in out  # T0 is the clone build's end
    plain = plan("drills/postgres-failover.yml", "-i", "inventory.example.yml")
    assert plain.returncode == 0 and "isolation - clone" not in plain.stdout
    runbook_path, inventory_path = _write(tmp_path)
    refused = plan(str(runbook_path), "-i", str(inventory_path), "--isolated")
    assert refused.returncode == 2 and "no isolation: section" in refused.stderr
