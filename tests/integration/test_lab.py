"""The embedded lab against real PostgreSQL: lifecycle, errors, the postgres probe/canary,
and every lab playbook run by the real ansible-playbook through inventory.example.yml.

Ports 553xx and temporary lab dirs, so a developer's own lab (54321/54322) is untouched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drdrill.errors import LabError
from drdrill.lab import LabConfig, LabStatus, lab_down, lab_status, lab_up, service_dsn
from drdrill.probes.postgres import PostgresCanary, PostgresProbe
from drdrill.runbook.model import CanarySpec, ProbeSpec
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "ansible-playbook"


skip_without_postgres()


def _new_dir(tag: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"drdrill-{tag}-", dir="/tmp"))
    path.chmod(0o755)
    return path / "lab"


def _lab_processes(lab_dir: Path) -> list[int]:
    """PIDs whose command line names the lab dir (postmasters: -D DIR) or whose working
    directory is inside it (every backend chdirs into its data dir)."""
    found = set()
    pgrep = subprocess.run(["pgrep", "-f", str(lab_dir)], capture_output=True, text=True)
    found.update(int(p) for p in pgrep.stdout.split())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(lab_dir)):
                found.add(int(pid))
        except OSError:
            continue
    return sorted(found)


@pytest.fixture(scope="module")
def lab() -> Iterator[LabConfig]:
    config = LabConfig(_new_dir("lab"), 55321, 55322)
    yield config
    lab_down(config)
    shutil.rmtree(config.lab_dir.parent, ignore_errors=True)


def _assert_healthy(status: LabStatus, primary: str = "pg1") -> None:
    assert status.healthy, status.to_json()
    assert status.primary is not None and status.primary.name == primary
    standby = status.standbys[0]
    assert standby.replication == "streaming"
    assert standby.upstream_port == status.primary.port
    assert isinstance(standby.lag_bytes, int) and standby.lag_bytes >= 0


def test_up_status_down_up(lab: LabConfig) -> None:
    started = time.monotonic()
    status = lab_up(lab)
    print(f"lab up (fresh) {time.monotonic() - started:.2f}s")
    _assert_healthy(status)
    pids = {n.name: n.pid for n in status.nodes}

    again = lab_up(lab)  # idempotent: the running nodes are left alone
    _assert_healthy(again)
    assert {n.name: n.pid for n in again.nodes} == pids
    _assert_healthy(lab_status(lab))
    assert (lab.lab_dir / "lab.env.json").is_file()

    lab_down(lab)
    assert _lab_processes(lab.lab_dir) == []
    assert {n.role for n in lab_status(lab).nodes} == {"down"}

    started = time.monotonic()
    _assert_healthy(lab_up(lab))
    print(f"lab up (existing) {time.monotonic() - started:.2f}s")


def test_taken_port_is_named() -> None:
    config = LabConfig(_new_dir("port"), 55331, 55332)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 55331))
        holder.listen()
        with pytest.raises(LabError) as caught:
            lab_up(config)
    message = str(caught.value)
    assert "port 55331" in message and "already in use" in message
    assert "--primary-port" in message
    assert not (config.lab_dir / "pg1" / "PG_VERSION").exists()
    shutil.rmtree(config.lab_dir.parent, ignore_errors=True)


def test_probe_and_canary(lab: LabConfig) -> None:
    _assert_healthy(lab_up(lab))
    dsn = service_dsn(lab)
    writable = PostgresProbe(ProbeSpec("postgres", {"dsn": dsn, "query":
                             "select not pg_is_in_recovery()", "expect": "t"}, 2.0))
    result = writable.check()
    assert result.ok and f":{lab.primary_port}" in result.detail, result
    wrong = PostgresProbe(ProbeSpec("postgres", {"dsn": dsn, "query": "select 1",
                                                 "expect": "2"}, 2.0)).check()
    assert not wrong.ok and "expected '2'" in wrong.detail
    dead = PostgresProbe(ProbeSpec("postgres", {"dsn": "host=127.0.0.1 port=1 "
                                                "user=postgres"}, 1.0)).check()
    assert not dead.ok and dead.detail

    canary = PostgresCanary(CanarySpec("postgres", 0.05, {"dsn": dsn, "table": "t_canary"}))
    canary.setup()
    acked = {w.seq for w in (canary.write(seq, time.time()) for seq in range(1, 31)) if w.acked}
    assert acked == set(range(1, 31))
    assert canary.read_back() == acked
    canary.setup()  # a new run starts empty
    assert canary.read_back() == set()
    canary.close()
    bad = PostgresCanary(CanarySpec("postgres", 0.05, {"dsn": "host=127.0.0.1 port=1 "
                                                       "user=postgres connect_timeout=1"},
                                    timeout_s=0.5))
    write = bad.write(1, time.time())
    assert not write.acked and write.detail


def _play(lab: LabConfig, playbook: str, *extra: str) -> float:
    env = {**os.environ, "DRDRILL_LAB_DIR": str(lab.lab_dir), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "default"}
    started = time.monotonic()
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(ROOT / "inventory.example.yml"),
                           str(ROOT / "playbooks" / playbook), *extra], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    took = time.monotonic() - started
    assert done.returncode == 0, f"{playbook} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    print(f"{playbook} {' '.join(extra)} {took:.2f}s")
    return took


class Writer:
    """The test's own observer: inserts through the service DSN every 20 ms."""

    def __init__(self, dsn: str) -> None:
        self.canary = PostgresCanary(CanarySpec("postgres", 0.02, {"dsn": dsn,
                                                                   "table": "t_observer"}))
        self.canary.setup()
        self.acked: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            if self.canary.write(seq, time.time()).acked:
                self.acked[seq] = time.monotonic()
            time.sleep(0.02)

    def first_ack_after(self, instant: float) -> float | None:
        later = [t for t in list(self.acked.values()) if t > instant]
        return min(later) if later else None

    def finish(self) -> set[int]:
        self.stop.set()
        self.thread.join(10)
        survived = self.canary.read_back()
        self.canary.close()
        return survived


def test_playbooks_failover_failback_restore(lab: LabConfig) -> None:
    _assert_healthy(lab_up(lab))
    _play(lab, "pg-verify-replication.yml", "-e", "max_lag_bytes=1048576")
    _play(lab, "pg-workload.yml", "-e", "workload_txns=50")

    writer = Writer(service_dsn(lab))
    time.sleep(0.5)
    _play(lab, "pg-crash.yml")
    crashed = time.monotonic()
    _play(lab, "pg-fence.yml")
    assert (lab.lab_dir / "pg1" / "standby.signal").exists()
    _play(lab, "pg-promote.yml")
    first = writer.first_ack_after(crashed)
    time.sleep(0.3)
    survived = writer.finish()
    assert first is not None
    print(f"crash -> first acknowledged write through the service DSN: {first - crashed:.2f}s"
          " (fence + promote playbooks in between)")
    lost = set(writer.acked) - survived
    assert not lost, f"healthy async pair lost acknowledged writes {sorted(lost)}"

    probe = PostgresProbe(ProbeSpec("postgres", {"dsn": service_dsn(lab),
                                                 "query": "select 1"}, 2.0)).check()
    assert probe.ok and f":{lab.standby_port}" in probe.detail, probe

    _play(lab, "pg-rewind.yml", "-e", "drdrill_hosts=pg1")
    swapped = lab_status(lab)
    _assert_healthy(swapped, primary="pg2")
    assert swapped.swapped
    _assert_healthy(lab_up(lab), primary="pg2")  # `up` on a failed-over lab changes nothing
    _play(lab, "pg-verify-replication.yml", "-e", "drdrill_hosts=pg2")
    _play(lab, "pg-verify-data.yml", "-e", "drdrill_hosts=pg2", "-e", "ledger_min_rows=100")

    _play(lab, "pg-failback.yml")
    back = lab_status(lab)
    _assert_healthy(back, primary="pg1")
    assert not back.swapped

    # point-in-time restore to a named restore point into a new instance
    _play(lab, "pg-basebackup.yml")
    with psycopg.connect(service_dsn(lab), autocommit=True) as conn:
        conn.execute("create table pitr (id int primary key)")
        conn.execute("insert into pitr select generate_series(1, 10)")
        conn.execute("select pg_create_restore_point('drdrill_test_rp')")
        conn.execute("insert into pitr select generate_series(11, 20)")
        conn.execute("drop table drdrill_ledger")  # the operator error
    _play(lab, "pg-restore-pitr.yml", "-e", "restore_target_name=drdrill_test_rp",
          "-e", "restore_port=55325")
    restored = "host=127.0.0.1 port=55325 dbname=drdrill user=postgres"
    with psycopg.connect(restored, autocommit=True) as conn:
        ids = {r[0] for r in conn.execute("select id from pitr")}
        archive_mode = conn.execute("show archive_mode").fetchone()
    assert ids == set(range(1, 11))
    assert archive_mode == ("off",)
    _play(lab, "pg-verify-data.yml", "-e", "verify_port=55325", "-e", "ledger_min_rows=100")

    lab_down(lab)  # also stops the restored instance
    assert _lab_processes(lab.lab_dir) == []
