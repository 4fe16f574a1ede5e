"""Group commit: threads emitting at the same time share an fsync, the chain stays intact,
and ``emit`` still returns only once its event is on disk."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from drdrill.events import Clock, EventBus
from drdrill.journal.store import JournalWriter, parse_lines
from drdrill.journal.verify import VerifyReport, _check_chain


class _SlowDisk:
    """os.fsync that takes ``delay_s`` (a busy CI disk) and counts its calls."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        time.sleep(self.delay_s)
        self._real(fd)


def _bus(tmp_path: Path) -> tuple[EventBus, JournalWriter]:
    bus = EventBus(Clock())
    journal = JournalWriter(tmp_path / "journal.jsonl")
    bus.subscribe(journal, critical=True)
    return bus, journal


def test_concurrent_emitters_share_fsyncs_and_keep_the_chain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bus, journal = _bus(tmp_path)
    disk = _SlowDisk(0.05)
    monkeypatch.setattr(os, "fsync", disk)
    per_thread, threads = 10, 6

    def emitter(name: str) -> None:
        for i in range(per_thread):
            bus.emit("probe", {"thread": name, "i": i})

    workers = [threading.Thread(target=emitter, args=(f"t{n}",)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    journal.close()
    lines = parse_lines((tmp_path / "journal.jsonl").read_bytes())
    assert len(lines) == per_thread * threads
    assert [line.body["seq"] for line in lines] == list(range(per_thread * threads))
    report = VerifyReport()
    assert _check_chain((tmp_path / "journal.jsonl").read_bytes(), "journal", report)
    assert not report.problems
    # one fsync per event would be 60 of them; sharing needs far fewer
    assert disk.calls < per_thread * threads * 0.6, disk.calls


def test_emit_returns_only_after_its_event_is_synced(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bus, journal = _bus(tmp_path)
    synced_lines: list[int] = []
    real = os.fsync

    def recording_fsync(fd: int) -> None:
        real(fd)
        synced_lines.append(journal.seq)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    for i in range(5):
        bus.emit("step_started", {"i": i})
        assert synced_lines and synced_lines[-1] >= i + 1  # line i was written before the sync
    journal.close()
