"""One PostgreSQL instance of the lab: its files, its process, and what it says it is."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from drdrill.errors import LabError
from drdrill.lab.config import DB_SUPERUSER, LabConfig, NodeStatus
from drdrill.lab.osuser import OsUser
from drdrill.lab.ports import port_free, port_holder

PORT_HINT = ("choose free ports for a new lab: drdrill lab up --primary-port N "
             "--standby-port M --lab-dir DIR (an existing lab keeps the ports it was created "
             "with; `drdrill lab down --purge` discards it)")


def slot_name(node: str) -> str:
    """The replication slot a node consumes when it is a standby (kept on its upstream)."""
    return f"drdrill_{node}"


def conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def postmaster_pid(data: Path) -> int | None:
    """The live postmaster's pid from ``postmaster.pid``, or None (stale file, no file)."""
    try:
        first = (data / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        pid = int(first)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"postgres" in cmdline or b"postmaster" in cmdline else None


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    data: Path
    cfg: LabConfig
    bin_dir: Path
    user: OsUser

    def bin(self, tool: str) -> str:
        return str(self.bin_dir / tool)

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    @property
    def configured_standby(self) -> bool:
        return (self.data / "standby.signal").is_file()

    @property
    def pid(self) -> int | None:
        return postmaster_pid(self.data)

    def conninfo(self, dbname: str = "postgres") -> str:
        return (f"host={self.cfg.host} port={self.port} user={DB_SUPERUSER} dbname={dbname} "
                f"connect_timeout=2")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.conninfo(dbname), autocommit=True,
                               options="-c statement_timeout=5000")

    def check_port(self) -> None:
        if not port_free(self.cfg.host, self.port):
            holder = port_holder(self.port)
            held = f" by {holder}" if holder else ""
            raise LabError(f"port {self.port} on {self.cfg.host} (lab node {self.name}) is "
                           f"already in use{held}", hint=PORT_HINT)

    def write_node_conf(self, upstream_port: int | None) -> None:
        """Rewrite ``postgresql.auto.conf`` with what is specific to this node: its port and,
        as a standby, where it streams from (pg_basebackup -R and pg_rewind copy the
        upstream's file, so it is always rewritten after either)."""
        lines = ["# written by drdrill lab: node-specific settings", f"port = {self.port}"]
        if upstream_port is not None:
            conninfo = (f"host={self.cfg.host} port={upstream_port} user={DB_SUPERUSER} "
                        f"application_name={self.name}")
            lines += [f"primary_conninfo = {conf_quote(conninfo)}",
                      f"primary_slot_name = {conf_quote(slot_name(self.name))}"]
        self.user.write_file(self.data / "postgresql.auto.conf", "\n".join(lines) + "\n")

    def start(self) -> None:
        self.check_port()
        self.user.run([self.bin("pg_ctl"), "-D", str(self.data), "-l",
                       str(self.cfg.log_file(self.name)), "-w", "-t", "60", "start"], timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """Stop the postmaster; escalate fast → immediate → SIGKILL; wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        for how in (mode, "immediate"):
            done = self.user.run([self.bin("pg_ctl"), "-D", str(self.data), "-m", how, "-w",
                                  "-t", "20", "stop"], timeout=40, check=False)
            if done.returncode == 0 and self.pid is None:
                return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while postmaster_pid(self.data) is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def status(self) -> NodeStatus:
        """Role from the node itself (``pg_is_in_recovery``); never raises."""
        pid = self.pid
        base = NodeStatus(name=self.name, role="down", port=self.port, pid=pid,
                          data_dir=self.data)
        if pid is None:
            return base
        try:
            with self.connect() as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row is not None and row[0]:
                    recv = conn.execute("select status, sender_port from pg_stat_wal_receiver"
                                        ).fetchone()
                    state = str(recv[0]) if recv else "no wal receiver"
                    upstream = int(str(recv[1])) if recv and recv[1] is not None else None
                    return replace(base, role="standby", replication=state,
                                   upstream_port=upstream)
                rows = conn.execute(
                    "select application_name, state from pg_stat_replication").fetchall()
        except psycopg.Error as exc:
            return replace(base, role="unreachable",
                           detail=(str(exc).strip().splitlines() or ["?"])[0])
        desc = ", ".join(f"{r[1]} to {r[0]}" for r in rows) or "no standby connected"
        return replace(base, role="primary", replication=desc)

    def lag_of_standbys(self) -> dict[str, int]:
        """On a primary: replay lag in bytes of each connected standby, by application_name."""
        try:
            with self.connect() as conn:
                rows = conn.execute(
                    "select application_name, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
                    "from pg_stat_replication").fetchall()
        except psycopg.Error:
            return {}
        return {str(r[0]): int(str(r[1])) for r in rows if r[1] is not None}
