"""A PostgreSQL primary in one namespace and its hot standby in another, streaming
across the veths."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from harness.netns import NetnsHarness
from harness.pg import PgPair, missing_postgres


@pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))
def test_standby_streams_across_namespaces(ssh_hosts: NetnsHarness) -> None:
    with PgPair(ssh_hosts, "db1", "db2") as pg:
        row = pg.wait_streaming()
        assert row["client_addr"] == ssh_hosts.address("db2")  # over the veth, not loopback
        with psycopg.connect(pg.primary.dsn(), autocommit=True) as conn:
            conn.execute("create table marks (n int)")
            conn.execute("insert into marks select generate_series(1, 100)")
        deadline = time.monotonic() + 10
        with psycopg.connect(pg.standby.dsn(), autocommit=True) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)
            while time.monotonic() < deadline:
                if conn.execute("select to_regclass('marks') is not null").fetchone() == (True,):
                    count = conn.execute("select count(*) from marks").fetchone()
                    if count == (100,):
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("standby did not replay the primary's writes")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("insert into marks values (0)")
        # the servers run inside their namespaces, as postgres, on their own addresses
        for node in (pg.primary, pg.standby):
            listen = ssh_hosts.ns_exec(node.host, ["ss", "-Hltn"]).stdout
            assert f"{node.address}:{node.port}" in listen
        pids = ssh_hosts.ns_pids("db1")
        users = {Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[0]
                 for p in pids if "postgres" in Path(f"/proc/{p}/comm").read_text()}
        assert users and "0" not in users
    assert not pg.dir.exists()
