"""The journal: ``journal.jsonl``, append-only, one JSON object a line, hash-chained.

Each line is ``{"seq", "type", "wall", "mono", "data", "prev"}`` where ``prev`` is the
SHA-256 (hex) of the previous line's bytes (without its newline), and 64 zeros for the
first line. Every line is written and fsynced before ``handle`` returns, so a crash loses
at most the event being written, and a torn last line is detectable (and ignored on read).

The event bus uses the two halves separately (``append`` under its lock, ``sync_through``
after releasing it): threads emitting at the same time share one fsync (group commit), so
a slow disk never queues the engine behind the probe's and notifiers' fsyncs one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.events import Event

GENESIS = "0" * 64
JOURNAL_NAME = "journal.jsonl"


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def encode_line(seq: int, event: Event, prev: str) -> bytes:
    body = {"seq": seq, "type": event.type, "wall": event.wall, "mono": event.mono,
            "data": event.data, "prev": prev}
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode() + b"\n"


class JournalWriter:
    """Event handler that appends every event durably. Reopening an existing journal (resume)
    continues its chain after the last complete line; a torn tail is cut off first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # order of lines and the hash chain
        self._sync_lock = threading.Lock()  # one fsync at a time
        self.seq, self.last_hash = _tail_state(path)
        self._synced = self.seq  # lines [0, _synced) are known to be on disk
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fd = os.open(path, flags, 0o600)

    def handle(self, event: Event) -> None:
        self.sync_through(self.append(event))

    def append(self, event: Event) -> int:
        """Write the event's line (not yet durable); return its seq for ``sync_through``."""
        with self._lock:
            line = encode_line(self.seq, event, self.last_hash)
            os.write(self._fd, line)
            seq = self.seq
            self.seq += 1
            self.last_hash = line_hash(line)
            return seq

    def sync_through(self, seq: int) -> None:
        """Return once line ``seq`` is on disk. An fsync started after that line was written
        covers it, so concurrent callers mostly wait for one fsync, not one each."""
        with self._sync_lock:
            if self._synced > seq:
                return
            written = self.seq  # every line below this one has been written
            os.fsync(self._fd)
            self._synced = written

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _tail_state(path: Path) -> tuple[int, str]:
    """(next seq, hash of last complete line) of an existing journal, truncating a torn tail."""
    if not path.exists():
        return 0, GENESIS
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            os.fsync(fh.fileno())
        data = data[:good_end]
    lines = data.splitlines()
    if not lines:
        return 0, GENESIS
    return len(lines), line_hash(lines[-1])


@dataclass(frozen=True)
class JournalLine:
    number: int  # 1-based line number in the file
    raw: bytes
    body: dict[str, Any]

    def event(self) -> Event:
        return Event(self.body["type"], self.body.get("data", {}), self.body["wall"],
                     float(self.body["mono"]))


def iter_lines(path: Path) -> Iterator[JournalLine]:
    """Complete, parseable lines of a journal; a torn final line is skipped."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                return
            yield JournalLine(number, raw, body)


def read_events(path: Path) -> list[Event]:
    return [line.event() for line in iter_lines(path)]


def parse_lines(data: bytes) -> list[JournalLine]:
    """Complete, parseable lines of a journal held in memory (an evidence bundle's), up to
    the first torn or unparseable one, as ``iter_lines`` reads a file."""
    lines = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        if not raw.endswith(b"\n"):
            break
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            break
        if not isinstance(body, dict):
            break
        lines.append(JournalLine(number, raw, body))
    return lines
