"""An independent client-side writer: ground truth for drdrill's RTO, downtime and RPO.

A separate OS process (``python tests/harness/writer.py``) with its own psycopg
connection writes a numbered row every ``interval_s`` through a DSN (use the same
multi-host DSN with ``target_session_attrs=read-write`` as a real client), logging every
attempt — its start instant (wall and monotonic), duration and outcome — as one JSON line,
flushed. It shares no code with cli/drdrill: it is what an outside client saw.

API (for tests)::

    writer = IndependentWriter(dsn, Path("/tmp/x/writer.jsonl"))
    writer.start()                  # creates/empties the table, starts the process
    ...                             # run the drill
    log = writer.stop()             # WriterLog: attempts, outages(), acked
    present = writer.rows()         # seqs in the table now (through the DSN)
    lost = log.acked - present      # acknowledged by the database, missing after recovery
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

DEFAULT_TABLE = "t_independent_writer"


@dataclass(frozen=True)
class Attempt:
    seq: int
    start_wall: float  # UTC epoch at the attempt's start
    start_mono: float  # time.monotonic() at the start (same clock as drdrill's, same host)
    duration_s: float
    ok: bool
    error: str


@dataclass(frozen=True)
class Outage:
    """First failed attempt's start → first successful attempt's start after it."""

    start_mono: float
    end_mono: float | None
    start_wall: float
    failed_attempts: int

    @property
    def duration_s(self) -> float | None:
        return None if self.end_mono is None else self.end_mono - self.start_mono


@dataclass(frozen=True)
class WriterLog:
    attempts: tuple[Attempt, ...]

    @property
    def acked(self) -> set[int]:
        return {a.seq for a in self.attempts if a.ok}

    def outages(self) -> list[Outage]:
        out: list[Outage] = []
        first: Attempt | None = None
        failed = 0
        for attempt in sorted(self.attempts, key=lambda a: a.start_mono):
            if not attempt.ok:
                first = first or attempt
                failed += 1
            elif first is not None:
                out.append(Outage(first.start_mono, attempt.start_mono, first.start_wall,
                                  failed))
                first, failed = None, 0
        if first is not None:
            out.append(Outage(first.start_mono, None, first.start_wall, failed))
        return out


def read_log(path: Path) -> WriterLog:
    attempts = []
    for line in path.read_text().splitlines():
        if line.strip():
            body = json.loads(line)
            attempts.append(Attempt(int(body["seq"]), float(body["start_wall"]),
                                    float(body["start_mono"]), float(body["duration_s"]),
                                    bool(body["ok"]), str(body.get("error", ""))))
    return WriterLog(tuple(attempts))


class IndependentWriter:
    """Runs the writer process; see the module docstring."""

    def __init__(self, dsn: str, log_path: Path, interval_s: float = 0.05,
                 table: str = DEFAULT_TABLE) -> None:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table {table!r} must be a plain identifier")
        self.dsn, self.log_path, self.interval_s, self.table = dsn, log_path, interval_s, table
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"create table if not exists {self.table} "  # noqa: S608 - checked
                         "(seq bigint primary key, client_ts timestamptz not null)")
            conn.execute(f"truncate {self.table}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--dsn", self.dsn, "--log", str(self.log_path),
             "--interval", str(self.interval_s), "--table", self.table])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.log_path.read_text():
            time.sleep(0.02)  # started: its first attempt is logged

    def stop(self) -> WriterLog:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        return read_log(self.log_path)

    def rows(self, timeout_s: float = 20.0) -> set[int]:
        """Seqs present now, through the DSN (retried until a writable node answers)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    cur = conn.execute(f"select seq from {self.table}")  # noqa: S608
                    return {int(r[0]) for r in cur}
            except psycopg.Error:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)


def _attempt(conn: psycopg.Connection[Any] | None, dsn: str, table: str, seq: int
             ) -> tuple[psycopg.Connection[Any] | None, str]:
    """One INSERT (connecting first if needed); ("", conn) when the commit returned."""
    try:
        if conn is None or conn.closed:
            conn = psycopg.connect(dsn, autocommit=True,
                                   options="-c statement_timeout=2000")
        conn.execute(f"insert into {table} (seq, client_ts) values (%s, now())",  # noqa: S608
                     (seq,))
        return conn, ""
    except Exception as exc:  # every failure is an outcome, logged
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is gone anyway
                conn.close()
        return None, (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--table", default=DEFAULT_TABLE)
    args = parser.parse_args()
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    conn: psycopg.Connection[Any] | None = None
    origin, tick, seq = time.monotonic(), 0, 0
    with open(args.log, "a", buffering=1) as log:
        while not stopping:
            seq += 1
            start_wall, start_mono = time.time(), time.monotonic()
            conn, error = _attempt(conn, args.dsn, args.table, seq)
            log.write(json.dumps({"seq": seq, "start_wall": start_wall,
                                  "start_mono": start_mono,
                                  "duration_s": time.monotonic() - start_mono,
                                  "ok": not error, "error": error}) + "\n")
            tick += 1
            while origin + tick * args.interval < time.monotonic():
                tick += 1  # overran: the next attempt starts on the next free slot
            time.sleep(max(0.0, origin + tick * args.interval - time.monotonic()))


if __name__ == "__main__":
    _main()
