"""The playbooks' ``changed`` reports tell the truth (issue 15): on a real lab pair, a task
reports "changed" when it changed something and not when there was nothing to do, checked
against PostgreSQL and the data directories themselves. A drill's per-task record (and
Ansible's own change report) is only evidence if this holds.

Ports 58101/58102 and a temporary lab dir; the lab is purged at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drdrill.lab import LabConfig, lab_down, lab_status, lab_up
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]
skip_without_postgres()

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
TASK_HEADER = re.compile(r"^TASK \[(.*)\] \*+$")  # names may hold "[fact x]" markers
CHANGED = re.compile(r"^changed: \[([^\]\s]+)")  # "changed: [pg2]", "[pg2 -> localhost]"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabConfig]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-changed-", dir="/tmp"))
    base.chmod(0o755)
    config = LabConfig(base / "lab", 58101, 58102)
    try:
        assert lab_up(config).healthy
        yield config
    finally:
        lab_down(config, purge=True)
        shutil.rmtree(base, ignore_errors=True)


def _changed(lab: LabConfig, playbook: str, *extra: str) -> set[tuple[str, str]]:
    """Run a shipped playbook through inventory.example.yml; the (task, host) pairs that
    Ansible's default callback reports as "changed: [host]" (ansible-core has no json
    callback without the ansible.posix collection)."""
    env = {**os.environ, "DRDRILL_LAB_DIR": str(lab.lab_dir),
           "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(ROOT / "inventory.example.yml"),
                           str(ROOT / "playbooks" / playbook), *extra], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{playbook}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    found: set[tuple[str, str]] = set()
    task = ""
    for line in done.stdout.splitlines():
        if header := TASK_HEADER.match(line):
            task = header.group(1)
        elif changed := CHANGED.match(line):
            found.add((task, changed.group(1)))
    return found


def _dsn(lab: LabConfig, port: int) -> str:
    return f"host={lab.host} port={port} dbname=drdrill user=postgres connect_timeout=2"


def _ledger_rows(lab: LabConfig) -> int:
    with psycopg.connect(_dsn(lab, lab.primary_port), autocommit=True) as conn:
        row = conn.execute("select count(*) from drdrill_ledger").fetchone()
    assert row is not None
    return int(row[0])


def _standby_streams(lab: LabConfig) -> bool:
    try:
        with psycopg.connect(_dsn(lab, lab.standby_port), autocommit=True) as conn:
            row = conn.execute("select count(*) from pg_stat_wal_receiver "
                               "where status = 'streaming'").fetchone()
    except psycopg.OperationalError:
        return False
    return row is not None and row[0] == 1


def _accepts(lab: LabConfig, port: int) -> bool:
    try:
        with psycopg.connect(_dsn(lab, port), autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError:
        return False
    return True


def test_reads_change_nothing_and_writes_do(lab: LabConfig) -> None:
    assert _changed(lab, "pg-verify-replication.yml") == set()
    assert _changed(lab, "pg-workload.yml", "-e", "workload_txns=5") == {
        ("Write balanced transfers", "pg1")}
    rows = _ledger_rows(lab)
    assert rows >= 10
    # no transfers and the table already there: nothing changed, and the database agrees
    assert _changed(lab, "pg-workload.yml", "-e", "workload_txns=0") == set()
    assert _ledger_rows(lab) == rows
    assert _changed(lab, "pg-verify-data.yml", "-e", "ledger_min_rows=10") == set()


def test_stop_and_start_report_only_what_they_did(lab: LabConfig) -> None:
    on_pg2 = ("-e", "drdrill_hosts=pg2")
    assert _changed(lab, "pg-stop.yml", *on_pg2) == {("Stop it", "pg2")}
    assert not _accepts(lab, lab.standby_port)
    assert _changed(lab, "pg-stop.yml", *on_pg2) == set()  # already stopped
    assert _changed(lab, "pg-start.yml", *on_pg2) == {("Start it", "pg2")}
    assert _accepts(lab, lab.standby_port)
    assert _changed(lab, "pg-start.yml", *on_pg2) == set()  # already running


def test_unfence_changes_only_a_fenced_node(lab: LabConfig) -> None:
    marker = lab.data_dir("pg1") / "drdrill.fenced"
    assert not marker.exists()
    assert _changed(lab, "pg-unfence.yml", "-e", "drdrill_hosts=pg1") == set()
    marker.write_text("test\n")  # a stray marker only: PostgreSQL ignores the file
    assert _changed(lab, "pg-unfence.yml", "-e", "drdrill_hosts=pg1") == {
        ("Remove the fence files", "pg1")}
    assert not marker.exists()


def test_base_backup_replaces_only_what_exists(lab: LabConfig) -> None:
    backup = Path(json.loads((lab.lab_dir / "lab.env.json").read_text())["backup_dir"])
    partial = ("Clear a partial backup left by an interrupted run", "pg1")
    drop = ("Drop the previous backup", "pg1")
    had_one = backup.exists()
    first = _changed(lab, "pg-basebackup.yml")
    assert ("Run pg_basebackup -X stream -c fast", "pg1") in first
    assert ("Put the new one in place", "pg1") in first
    assert partial not in first
    assert (drop in first) == had_one
    assert (backup / "backup_label").exists()
    # now there is a previous backup to drop; an interrupted run's partial one is cleared
    Path(f"{backup}.partial").mkdir()
    second = _changed(lab, "pg-basebackup.yml")
    assert {partial, drop} <= second
    assert (backup / "backup_label").exists() and not Path(f"{backup}.partial").exists()


def test_cut_then_rewind_reports_each_change_once(lab: LabConfig) -> None:
    on_pg2 = ("-e", "drdrill_hosts=pg2", "-e", f"cut_dead_port={lab.standby_port + 7}")
    point = ("Point primary_conninfo at a dead port and reload", "pg2")
    assert point in _changed(lab, "pg-cut-replication.yml", *on_pg2)
    assert not _standby_streams(lab)
    assert point not in _changed(lab, "pg-cut-replication.yml", *on_pg2)  # already cut

    rejoined = _changed(lab, "pg-rewind.yml", "-e", "drdrill_hosts=pg2")
    # a standby of the same timeline: pg_rewind has nothing to do (so -R writes no
    # standby.signal and the playbook's own touch creates it); its slot exists already
    assert {name for name, _ in rejoined} == {
        "Stop it if it runs", "Lift the fence (pg_rewind's crash recovery refuses standby.signal)",
        "Checkpoint on the source (a freshly promoted node's control file still shows the old "
        "timeline until its first checkpoint, and pg_rewind would see \"no rewind required\")",
        "This node's own settings (pg_rewind copied the source's)",
        "Create standby.signal (pg_rewind -R may have exited early with \"no rewind required\")",
        "Start it as a standby"}, rejoined
    assert _standby_streams(lab)
    assert _changed(lab, "pg-rewind.yml", "-e", "drdrill_hosts=pg2") == set()  # streams
    status = lab_status(lab)
    assert status.healthy and status.primary is not None and status.primary.name == "pg1"


def test_fence_switch_wal_reports_changed_only_when_a_segment_was_switched(
        lab: LabConfig) -> None:
    """pg-fence.yml's "Switch WAL" (fence_flush_archive): pg_switch_wal() does nothing when
    no WAL was written since the last switch, so "changed" must come from what it returned,
    not be always true. The task's own SQL, run against the lab's primary: after a write it
    switches (true), right after that there is nothing to switch (false) — checked against
    the primary's WAL insert position, which only a real switch moves."""
    import yaml

    play = yaml.safe_load((ROOT / "playbooks" / "pg-fence.yml").read_text())
    block = next(t for t in play[0]["tasks"] if t.get("name") == "Flush the WAL archive first")
    task = next(t for t in block["block"] if t["name"] == "Switch WAL")
    assert task["changed_when"] == "pg_fence_switched.stdout.split('|')[1] == 'true'"
    sql = task["vars"]["switch_sql"]
    with psycopg.connect(_dsn(lab, lab.primary_port), autocommit=True) as conn:
        def switch() -> tuple[str, bool, bool]:
            before = conn.execute("select pg_current_wal_insert_lsn()").fetchone()
            row = conn.execute(sql).fetchone()
            after = conn.execute("select pg_current_wal_insert_lsn()").fetchone()
            assert row is not None and before is not None and after is not None
            segment, switched = str(row[0]).split("|")
            return segment, switched == "true", before[0] != after[0]

        conn.execute("create table if not exists fence_switch_probe (n int)")
        conn.execute("insert into fence_switch_probe values (1)")
        segment, switched, moved = switch()
        assert switched and moved, segment
        again, switched, moved = switch()
        assert (switched, moved) == (False, False), again
        assert again == segment  # the segment to wait for: the one just completed
        conn.execute("drop table fence_switch_probe")
