"""PostgreSQL service probe and canary (type ``postgres``), through a libpq DSN.

The service DSN is what a real client uses: a multi-host string with
``target_session_attrs=read-write``, so libpq finds whichever node is the primary, e.g.
``host=127.0.0.1,127.0.0.1 port=54321,54322 dbname=drdrill user=postgres
target_session_attrs=read-write connect_timeout=1``.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from drdrill.errors import DrdrillError
from drdrill.probes.base import (
    NO_CONTEXT,
    CanaryWrite,
    ProbeContext,
    ProbeResult,
    register_canary,
    register_probe,
)
from drdrill.runbook.model import CanarySpec, ProbeSpec

DEFAULT_TABLE = "drdrill_canary"


class CanaryUnreadable(DrdrillError):
    """The canary's store could not be read back by its deadline: RPO is not measured."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect(dsn: str, timeout_s: float) -> psycopg.Connection[tuple[Any, ...]]:
    """Autocommit connection; ``connect_timeout`` from the DSN if it sets one, else from
    ``timeout_s`` (libpq waits at least 2 s per host); ``statement_timeout`` = ``timeout_s``."""
    extra: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(dsn):
        extra["connect_timeout"] = max(1, math.ceil(timeout_s))
    return psycopg.connect(dsn, autocommit=True,
                           options=f"-c statement_timeout={max(1, int(timeout_s * 1000))}",
                           **extra)


class PostgresProbe:
    """Options: ``dsn`` (required), ``query`` (default ``select 1``), ``expect`` (the first
    column of the first row, as text). A fresh connection per check, as a new client would."""

    def __init__(self, spec: ProbeSpec, context: ProbeContext = NO_CONTEXT) -> None:
        self.dsn = str(spec.options["dsn"])
        self.query = str(spec.options.get("query") or "select 1")
        expect = spec.options.get("expect")
        self.expect = None if expect is None else _as_text(expect)
        self.timeout_s = spec.timeout_s

    def check(self) -> ProbeResult:
        try:
            with _connect(self.dsn, self.timeout_s) as conn:
                row = conn.execute(self.query.encode()).fetchone()
                where = _where(conn)
        except Exception as exc:  # a failed check is a result, never an exception
            return ProbeResult(False, _first_line(exc))
        value = None if row is None else _as_text(row[0])
        if self.expect is not None and value != self.expect:
            return ProbeResult(False, f"got {value!r}, expected {self.expect!r} ({where})")
        return ProbeResult(True, f"{value} ({where})" if value is not None else where)

    def close(self) -> None:
        return None


def _as_text(value: object) -> str:
    """PostgreSQL's own text form for booleans (t/f), so ``expect: "t"`` works."""
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"{info.host}:{info.port}"


class PostgresCanary:
    """Options: ``dsn`` (required), ``table`` (default ``drdrill_canary``).

    ``setup`` creates the table ``(seq bigint primary key, client_ts timestamptz,
    written_at timestamptz default now())`` if missing and empties it: one table per drill
    run at a time. ``write`` is one INSERT on a kept autocommit connection, acknowledged only
    when the commit returned; on any failure the connection is dropped and the next write
    reconnects through the DSN (so it follows the primary). Never retried within a write: a
    failed write's outcome is unknown, and read-back tells. ``read_back`` retries for up to
    ``max(5, timeout)`` seconds and then raises CanaryUnreadable (``last_error`` says why).
    """

    def __init__(self, spec: CanarySpec, context: ProbeContext = NO_CONTEXT) -> None:
        self.dsn = str(spec.options["dsn"])
        table = str(spec.options.get("table") or DEFAULT_TABLE)
        if not _IDENT.match(table):
            raise DrdrillError(f"canary table {table!r} is not a plain SQL identifier",
                               hint="use letters, digits and _ (e.g. drdrill_canary)")
        self.table = sql.Identifier(table)
        self.timeout_s = spec.timeout_s
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self.last_error: str | None = None

    def setup(self) -> None:
        """Create and empty the table; raises DrdrillError when the store is unreachable."""
        try:
            with _connect(self.dsn, self.timeout_s) as conn:
                conn.execute(sql.SQL(
                    "create table if not exists {} (seq bigint primary key, "
                    "client_ts timestamptz not null, "
                    "written_at timestamptz not null default now())").format(self.table))
                conn.execute(sql.SQL("truncate {}").format(self.table))
        except psycopg.Error as exc:
            raise DrdrillError(f"postgres canary setup failed: {_first_line(exc)}",
                               hint="is the service up? (drdrill lab status)") from exc

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = _connect(self.dsn, self.timeout_s)
            self._conn.execute(
                sql.SQL("insert into {} (seq, client_ts) values (%s, to_timestamp(%s))")
                .format(self.table), (seq, client_ts))
        except Exception as exc:
            self._drop()
            return CanaryWrite(seq, False, _first_line(exc))
        return CanaryWrite(seq, True)

    def read_back(self) -> set[int]:
        """Every seq in the table, read from whichever node is writable now (the DSN's
        ``target_session_attrs``), retried until ``max(5, timeout)`` s have passed. Raises
        CanaryUnreadable when no writable node answered: an unreadable store is never an
        empty one, or every acknowledged write would look lost."""
        deadline = time.monotonic() + max(5.0, self.timeout_s)
        while True:
            try:
                with _connect(self.dsn, self.timeout_s) as conn:
                    rows = conn.execute(sql.SQL("select seq from {}").format(self.table))
                    found = {int(r[0]) for r in rows}
                self.last_error = None
                return found
            except Exception as exc:
                self.last_error = _first_line(exc)
                if time.monotonic() >= deadline:
                    raise CanaryUnreadable(
                        f"no writable node answered the canary read-back: {self.last_error}"
                    ) from exc
                time.sleep(0.2)

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def register() -> None:
    register_probe("postgres", PostgresProbe)
    register_canary("postgres", PostgresCanary)
