"""`drdrill preflight` on the shipped failover drill against a real lab: readiness checks
that check. Healthy → exit 0; a drifted standby setting → warn (capacity) or fail (takeover)
as the drill declares; replication cut → fail naming pg2; lab down → fail naming each
endpoint. The shipped drill and inventory.example.yml run unchanged on this module's own
ports (57501/57502: endpoints come from lab.env.json through the inventory). Each case's
ground truth is read by the test's own psycopg connections, not through drdrill."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drdrill.lab import LabConfig, lab_down, lab_up
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(Path(sys.executable).parent / "drdrill")
PRIMARY, STANDBY = 57501, 57502
PG1, PG2 = f"pg1 (127.0.0.1:{PRIMARY})", f"pg2 (127.0.0.1:{STANDBY})"

skip_without_postgres()


@pytest.fixture(scope="module")
def lab() -> Iterator[LabConfig]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-preflight-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", PRIMARY, STANDBY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRDRILL_LAB_DIR", str(config.lab_dir))
        mp.setenv("DRDRILL_LOCK_DIR", str(base / "locks"))
        mp.setenv("DRDRILL_RUNS_DIR", str(base / "runs"))
        try:
            assert lab_up(config).healthy
            yield config
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _preflight() -> tuple[int, str]:
    done = subprocess.run(
        [DRDRILL, "preflight", "drills/postgres-failover.yml", "-i", "inventory.example.yml"],
        capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL, timeout=120,
        check=False, env={**os.environ, "COLUMNS": "300"})
    return done.returncode, done.stdout + done.stderr


def _row(output: str, who: str, check: str) -> str:
    """The table row of ``check`` on ``who`` (exactly one)."""
    rows = [line for line in output.splitlines()
            if line.strip().startswith(who) and f"  {check}  " in line]
    assert len(rows) == 1, (who, check, output)
    return rows[0]


def _sql(port: int, *statements: str) -> list[tuple[object, ...]]:
    with psycopg.connect(f"host=127.0.0.1 port={port} dbname=postgres user=postgres "
                         "connect_timeout=3", autocommit=True) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def _pg_ctl(config: LabConfig, node: str, *args: str) -> None:
    env = json.loads(config.env_file.read_text())
    argv = [*env["run_as"], f"{env['bin_dir']}/pg_ctl", "-D", str(config.data_dir(node)),
            "-w", "-t", "60", "-l", str(config.log_file(node)), *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=90)


def _receiver(port: int) -> str | None:
    rows = _sql(port, "select status from pg_stat_wal_receiver")
    return str(rows[0][0]) if rows else None


def _wait_streaming(port: int) -> None:
    deadline = time.monotonic() + 30
    while _receiver(port) != "streaming":
        assert time.monotonic() < deadline, "pg2 did not stream again"
        time.sleep(0.2)


def test_healthy_lab_passes(lab: LabConfig) -> None:
    code, out = _preflight()
    assert code == 0, out
    assert "checks passed" in out and "FAIL" not in out and "warn" not in out, out
    assert "primary (writable)" in _row(out, PG1, "endpoint answers")
    assert "standby (in recovery)" in _row(out, PG2, "endpoint answers")
    assert _receiver(STANDBY) == "streaming"  # what the check says, seen independently
    assert f"streaming from {PG1}" in _row(out, PG2, "replication streaming")
    assert "max_lag_bytes 16777216" in _row(out, PG2, "replication streaming")
    assert "7 settings as on pg1" in _row(out, PG2, "drift takeover settings")
    assert " ok " in _row(out, PG2, "clock")


def test_capacity_setting_drift_warns(lab: LabConfig) -> None:
    _sql(STANDBY, "alter system set work_mem = '8MB'", "select pg_reload_conf()")
    try:
        time.sleep(0.5)
        assert _sql(STANDBY, "show work_mem") == [("8MB",)]
        assert _sql(PRIMARY, "show work_mem") != [("8MB",)]
        code, out = _preflight()
        assert code == 0, out
        row = _row(out, PG2, "drift capacity settings")
        assert " warn " in row and "work_mem = 8MB here" in row, row
        assert "1 warning" in out, out
    finally:
        _sql(STANDBY, "alter system reset work_mem", "select pg_reload_conf()")


def test_takeover_setting_drift_fails(lab: LabConfig) -> None:
    primary_value = _sql(PRIMARY, "show max_connections")[0][0]
    drifted = str(int(str(primary_value)) + 7)  # higher: a standby with lower would not start
    _sql(STANDBY, f"alter system set max_connections = {drifted}")
    _pg_ctl(lab, "pg2", "restart")
    try:
        assert _sql(STANDBY, "show max_connections") == [(drifted,)]
        code, out = _preflight()
        assert code == 2, out
        row = _row(out, PG2, "drift takeover settings")
        assert "FAIL" in row and f"max_connections = {drifted} here, {primary_value} on pg1" \
            in row, row
        assert f"FAIL drift takeover settings on {PG2}" in out, out
    finally:
        _sql(STANDBY, "alter system reset max_connections")
        _pg_ctl(lab, "pg2", "restart")
        _wait_streaming(STANDBY)


def test_replication_cut_fails(lab: LabConfig) -> None:
    ((conninfo,),) = _sql(STANDBY, "show primary_conninfo")
    assert conninfo
    _sql(STANDBY, "alter system set primary_conninfo = ''", "select pg_reload_conf()")
    try:
        deadline = time.monotonic() + 20
        while _receiver(STANDBY) is not None:
            assert time.monotonic() < deadline, "the WAL receiver did not stop"
            time.sleep(0.2)
        code, out = _preflight()
        assert code == 2, out
        row = _row(out, PG2, "replication streaming")
        assert "FAIL" in row and "not running" in row and "primary_conninfo" in row, row
    finally:
        escaped = str(conninfo).replace("'", "''")
        _sql(STANDBY, f"alter system set primary_conninfo = '{escaped}'",
             "select pg_reload_conf()")
        _wait_streaming(STANDBY)
    code, out = _preflight()
    assert code == 0, out


def test_lab_down_fails_naming_each_endpoint(lab: LabConfig) -> None:
    lab_down(lab)  # servers stopped, lab.env.json kept: the DSN still resolves
    try:
        code, out = _preflight()
        assert code == 2, out
        for who in (PG1, PG2):
            row = _row(out, who, "endpoint answers")
            assert "FAIL" in row and "does not answer" in row and "drdrill lab" in row, row
        assert "no endpoint accepts writes" in _row(out, "service DSN", "one writable node")
        assert "not ready" in out, out
    finally:
        assert lab_up(lab).healthy
