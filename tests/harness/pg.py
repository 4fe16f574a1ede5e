"""A PostgreSQL 15 primary in one namespace host and its hot standby in another, streaming
across the veths. PostgreSQL refuses root: every server command runs as the ``postgres``
OS user inside the host's namespace (``ip netns exec NS runuser -u postgres -- ...``),
and ``pg_ctl`` always gets ``-l LOG`` (without it, it never returns when started remotely).
Each server listens on its namespace address only, with its socket in its own directory.
Authentication is ``trust`` from the harness's test subnet only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .netns import NetnsHarness

PG_BIN = Path(os.environ.get("DRDRILL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def missing_postgres() -> str | None:
    if not (PG_BIN / "pg_ctl").is_file():
        return f"needs PostgreSQL server binaries in {PG_BIN} (postgresql-15)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"needs the {PG_USER!r} OS user (PostgreSQL refuses to run as root)"
    return None


@dataclass(frozen=True)
class PgNode:
    host: str
    address: str
    port: int
    data: Path
    log: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return (f"host={self.address} port={self.port} user={PG_USER} dbname={dbname} "
                "connect_timeout=2")


class PgPair:
    """``with PgPair(harness, "db1", "db2") as pg: pg.primary.dsn()``"""

    def __init__(self, harness: NetnsHarness, primary: str, standby: str,
                 port: int = 5432, slot: str = "standby1") -> None:
        self.harness = harness
        self.port = port
        self.slot = slot
        self.dir = Path()
        self._names = (primary, standby)
        self.primary: PgNode
        self.standby: PgNode
        self._started: list[PgNode] = []

    def __enter__(self) -> PgPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _node(self, name: str, role: str) -> PgNode:
        return PgNode(name, self.harness.address(name), self.port, self.dir / role,
                      self.dir / f"{role}.log")

    def _pg(self, host: str, *argv: str, timeout: float = 60) -> str:
        return self.harness.ns_exec(host, [str(PG_BIN / argv[0]), *argv[1:]], user=PG_USER,
                                    timeout=timeout).stdout

    def start(self) -> PgPair:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        account = pwd.getpwnam(PG_USER)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.harness.prefix}pg-"))
        os.chown(self.dir, account.pw_uid, account.pw_gid)
        os.chmod(self.dir, 0o700)
        self.primary = self._node(self._names[0], "primary")
        self.standby = self._node(self._names[1], "standby")
        p, s = self.primary, self.standby
        self._pg(p.host, "initdb", "-D", str(p.data), "-U", PG_USER, "--auth=trust", "-N")
        with (p.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '{p.address}'\n"
                       f"port = {self.port}\n"
                       f"unix_socket_directories = '{self._socket_dir(p)}'\n"
                       "wal_level = replica\nwal_log_hints = on\nwal_keep_size = '64MB'\n"
                       "max_wal_senders = 10\nmax_replication_slots = 10\nhot_standby = on\n"
                       "wal_retrieve_retry_interval = '500ms'\n")
        with (p.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.harness.subnet} trust\n"
                      f"host replication all {self.harness.subnet} trust\n")
        self._pg_ctl(p, "start")
        self._pg(s.host, "pg_basebackup", "-h", p.address, "-p", str(self.port), "-U", PG_USER,
                 "-D", str(s.data), "-R", "-X", "stream", "-c", "fast", "-C", "-S", self.slot)
        with (s.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '{s.address}'\n"
                       f"unix_socket_directories = '{self._socket_dir(s)}'\n")
        self._pg_ctl(s, "start")

    def _socket_dir(self, node: PgNode) -> Path:
        # not inside the data directory: pg_basebackup would copy the socket's lock file
        path = self.dir / f"sock-{node.data.name}"
        if not path.exists():
            self.harness.ns_exec(node.host, ["mkdir", "-m", "700", str(path)], user=PG_USER)
        return path

    def _pg_ctl(self, node: PgNode, action: str, *extra: str) -> None:
        try:
            self._pg(node.host, "pg_ctl", "-D", str(node.data), "-l", str(node.log), "-w",
                     "-t", "30", action, *extra)
        except RuntimeError as exc:
            log = node.log.read_text(errors="replace")[-1500:] if node.log.exists() else ""
            raise RuntimeError(f"{exc}\n{node.log}:\n{log}") from exc
        if action == "start":
            self._started.append(node)

    def wait_streaming(self, timeout: float = 15) -> dict[str, object]:
        """The primary's pg_stat_replication row for the standby once it is streaming."""
        import psycopg

        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
                row = conn.execute(
                    "select state, host(client_addr), application_name, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
                    "from pg_stat_replication").fetchone()
            if row:
                last = {"state": row[0], "client_addr": row[1], "application_name": row[2],
                        "lag_bytes": row[3]}
                if row[0] == "streaming":
                    return last
            time.sleep(0.1)
        raise TimeoutError(f"standby not streaming after {timeout}s: {last}")

    def stop(self) -> None:
        for node in reversed(self._started):
            if (node.data / "postmaster.pid").exists():
                self.harness.ns_exec(node.host, [str(PG_BIN / "pg_ctl"), "-D", str(node.data),
                                                 "-m", "immediate", "-w", "stop"],
                                     user=PG_USER, check=False, timeout=30)
        self._started.clear()
        if self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
