"""The Patroni drill end to end on a real Patroni + etcd + HAProxy lab (`lab up --with patroni`).

drills/patroni-failover.yml runs as shipped with inventory.patroni-example.yml as shipped
(DRDRILL_LAB_DIR points it at this module's lab). What the test checks with its own eyes:
Patroni's REST /cluster (the leader changed, the timeline moved, the old leader streams
again), an independent writer process (tests/harness/writer.py) writing through HAProxy
every 50 ms (its outage against drdrill's downtime; no acknowledged write lost, also
counted in the new leader's own table), the record (no step promotes: only a wait_for between
the disaster and service_restored), and /proc after `drdrill lab down`.

Ports (this module only): plain lab 55443/55444, Patroni PostgreSQL 55411/55412, REST
58011/58012, etcd 58055/58056, HAProxy 58075/58076.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.errors import LabError
from drdrill.lab import LabConfig, lab_down, lab_extras_up, lab_up
from drdrill.lab.etcd import find_etcd
from drdrill.lab.haproxy import find_haproxy
from drdrill.lab.patroni import find_patroni
from drdrill.lab.patroni_conf import PatroniPorts
from harness.writer import IndependentWriter
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(ROOT / ".venv" / "bin" / "drdrill")
PORTS = PatroniPorts((55411, 55412), (58011, 58012), 58055, 58056, 58075, 58076)
PROBE_INTERVAL_S = 0.2  # drills/patroni-failover.yml service.interval
WRITER_INTERVAL_S = 0.05

skip_without_postgres()
for _finder in (find_patroni, find_etcd, find_haproxy):
    try:
        _finder()
    except LabError as _missing:
        pytest.skip(f"Patroni lab component missing: {_missing}", allow_module_level=True)


@dataclass
class PatroniLabFixture:
    config: LabConfig
    base: Path
    env: dict[str, str]

    def dsn(self, port: int = PORTS.haproxy_primary) -> str:
        return (f"host=127.0.0.1 port={port} dbname=drdrill user=postgres "
                "target_session_attrs=read-write connect_timeout=2")


def _cluster() -> dict[str, Any]:
    for port in PORTS.rest:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except OSError:
            continue
    raise AssertionError("no Patroni REST API answers")


def _leader(cluster: dict[str, Any]) -> dict[str, Any]:
    leaders = [m for m in cluster["members"] if m["role"] == "leader"]
    assert len(leaders) == 1, cluster
    return dict(leaders[0])


def _lab_processes(lab_dir: Path) -> list[str]:
    """Every process whose command line names the lab dir (etcd --data-dir, patroni CONF,
    haproxy -f, postgres -D): none may survive `lab down`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(lab_dir) in cmd and "pytest" not in cmd:
            found.append(f"{pid}: {cmd[:160]}")
    return found


@pytest.fixture(scope="module")
def lab() -> Iterator[PatroniLabFixture]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-patroni-"))
    base.chmod(0o755)
    config = LabConfig(base / "lab", 55443, 55444)
    env = {**os.environ, "DRDRILL_LAB_DIR": str(config.lab_dir),
           "DRDRILL_LOCK_DIR": str(base / "locks"), "DRDRILL_RUNS_DIR": str(base / "runs")}
    with pytest.MonkeyPatch.context() as mp:
        for key in ("DRDRILL_LAB_DIR", "DRDRILL_LOCK_DIR", "DRDRILL_RUNS_DIR"):
            mp.setenv(key, env[key])
        try:
            started = time.monotonic()
            assert lab_up(config).healthy
            extras = lab_extras_up(config, ("patroni",), patroni_ports=PORTS)
            assert extras["patroni"].healthy, extras["patroni"].to_json()
            print(f"\nlab up --with patroni {time.monotonic() - started:.1f}s")
            yield PatroniLabFixture(config, base, env)
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(600)
def test_patroni_failover_drill_end_to_end(lab: PatroniLabFixture) -> None:
    before = _leader(_cluster())
    writer = IndependentWriter(lab.dsn(), lab.base / "writer.jsonl", WRITER_INTERVAL_S)
    writer.start()
    try:
        result = run_drill(RunOptions(ROOT / "drills" / "patroni-failover.yml",
                                      ROOT / "inventory.patroni-example.yml", yes=True,
                                      runs_dir=lab.base / "runs"))
    finally:
        log = writer.stop()
    record, res = result.record, result.record["results"]
    print(f"\npatroni-failover: {result.status} exit {result.exit_code}; RTO {res['rto_s']}s "
          f"RPO {res['rpo_s']}s lost {res['lost_writes']} of {res['acked_writes']}; "
          f"downtime {res['downtime_s']}s; outages {res['outages']}")
    assert result.exit_code == 0, (result.status, res, [s for s in record["steps"]
                                                         if s["status"] != "ok"])

    # Patroni, not drdrill, promoted: a new leader on a new timeline; the old one streams
    after = _cluster()
    leader = _leader(after)
    assert leader["name"] != before["name"], after
    assert leader["timeline"] > before["timeline"], (before, after)
    old = next(m for m in after["members"] if m["name"] == before["name"])
    assert old["role"] in ("replica", "sync_standby") and old["state"] == "streaming", after
    steps = record["steps"]
    names = [s["name"] for s in steps]
    disaster = names.index("crash the Patroni leader")
    restored = names.index("wait for Patroni to promote a replica (through HAProxy)")
    assert [s["kind"] for s in steps[disaster + 1:restored + 1]] == ["wait_for"], steps
    runbook = yaml.safe_load((ROOT / "drills" / "patroni-failover.yml").read_text())
    assert not any("promote" in str(s.get("playbook", "")) for s in runbook["steps"])

    # the independent client through HAProxy saw one outage, the one drdrill measured
    outages = [o for o in log.outages() if o.end_mono is not None]
    assert len(outages) == 1 and len(res["outages"]) == 1, (log.outages(), res["outages"])
    seen, measured = outages[0], res["outages"][0]
    tolerance = PROBE_INTERVAL_S + WRITER_INTERVAL_S
    assert seen.duration_s is not None
    print(f"independent writer through HAProxy: outage {seen.duration_s:.3f}s "
          f"({seen.failed_attempts} failed attempts), {len(log.acked)} acknowledged")
    assert abs(seen.duration_s - res["downtime_s"]) <= tolerance, (seen, res["downtime_s"])
    measured_start = _wall(record["started_at"]) + float(measured["start_s"])
    assert abs(seen.start_wall - measured_start) <= tolerance, (seen, measured)
    assert 10.0 < res["rto_s"] <= record["objectives"]["rto_s"], res

    # no acknowledged write lost: through HAProxy, and in the new leader's own table
    assert log.acked - writer.rows() == set()
    with psycopg.connect(lab.dsn(int(leader["port"])), autocommit=True) as conn:
        on_leader = {int(r[0]) for r in conn.execute("select seq from t_independent_writer")}
    assert log.acked - on_leader == set()
    assert res["lost_writes"] == 0 and res["rpo_s"] == 0, res


def test_status_then_lab_down_leaves_no_process(lab: PatroniLabFixture) -> None:
    status = subprocess.run([DRDRILL, "lab", "status", "--json"], env=lab.env,
                            capture_output=True, text=True, timeout=60)
    data = json.loads(status.stdout)
    patroni = data["extras"]["patroni"]
    assert status.returncode == 0 and patroni["healthy"], status.stdout
    assert patroni["leader"] and len(patroni["replicas"]) == 1, patroni
    assert patroni["settings"] == {"ttl": 20, "loop_wait": 1, "retry_timeout": 4}, patroni
    assert _lab_processes(lab.config.lab_dir), "the lab should be running before lab down"
    down = subprocess.run([DRDRILL, "lab", "down"], env=lab.env, capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _lab_processes(lab.config.lab_dir) == []
    for port in PORTS.listed():
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
