"""The service probe and the canary: background threads on their own fixed schedules,
from before the first step to the end of the run, emitting every result as an event.

They tick on an absolute schedule (origin + k * interval) so a slow check never makes the
sampling drift; a check that overruns its slot is followed at once by the next.

Every attempt is journaled AT its start instant (the event's ``mono``) with its
``duration_s``: a hung attempt that fails after 2 s failed when it started, as an
independent client would see it (DESIGN.md "service probe"). A check that raises is a
failed attempt plus a ``background_error`` event, never the end of the stream.

Results are journaled by a recorder thread beside each ticker, not by the ticker itself:
the sampling grid is the measuring instrument, and a slow disk (an fsync of 0.5 s on a
busy machine) must not delay the sample that would see the service come back. Stopping a
ticker drains its recorder, so every result is in the journal before the read-back or the
verdict uses it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from drdrill.events import Emission
from drdrill.probes.base import Canary, CanaryWrite, Probe, ProbeResult

EmitMany = Callable[[list[Emission]], object]
Now = Callable[[], float]


class _Recorder(threading.Thread):
    """Hands a ticker's results to the event stream in batches, from its own thread."""

    def __init__(self, name: str, emit_many: EmitMany) -> None:
        super().__init__(name=name, daemon=True)
        self._emit_many = emit_many
        self._queue: queue.SimpleQueue[Emission | None] = queue.SimpleQueue()

    def put(self, type_: str, data: Mapping[str, Any], at: float) -> None:
        self._queue.put((type_, data, at))

    def run(self) -> None:
        done = False
        while not done:
            batch: list[Emission] = []
            item = self._queue.get()
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            done = item is None
            if batch:
                with contextlib.suppress(Exception):  # best effort, as a tick's own error
                    self._emit_many(batch)

    def close(self, timeout: float) -> None:
        """Journal everything queued, then end."""
        self._queue.put(None)
        if self.is_alive():
            self.join(timeout)


class _Ticker(threading.Thread):
    def __init__(self, name: str, interval_s: float, emit_many: EmitMany) -> None:
        super().__init__(name=name, daemon=True)
        self.interval_s = max(interval_s, 0.01)
        self.stopping = threading.Event()
        self._recorder = _Recorder(f"{name}-recorder", emit_many)

    def start(self) -> None:
        self._recorder.start()
        super().start()

    def emit(self, type_: str, data: Mapping[str, Any], at: float) -> None:
        """Record a result measured at ``at``; the recorder journals it."""
        self._recorder.put(type_, data, at)

    def run(self) -> None:
        origin = time.monotonic()
        tick = 0
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception as exc:  # a broken tick must not end the stream
                self.report_error(exc)
            tick += 1
            next_at = origin + tick * self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # overran: skip missed slots, keep the grid
                tick += int(-delay // self.interval_s) + 1
                delay = origin + tick * self.interval_s - time.monotonic()
            self.stopping.wait(max(delay, 0.0))

    def tick(self) -> None:
        raise NotImplementedError

    def report_error(self, exc: BaseException) -> None:
        """Journal an exception raised inside a tick (best effort: if even that fails, the
        thread goes on with the next tick)."""
        with contextlib.suppress(Exception):  # nothing left to report to
            self.emit_error(self.name, exc)

    def emit_error(self, thread: str, exc: BaseException) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)
        self._recorder.close(timeout)


class ServiceMonitor(_Ticker):
    """Checks what customers use; every attempt becomes a ``probe`` event at its start."""

    def __init__(self, probe: Probe, interval_s: float, emit_many: EmitMany, now: Now) -> None:
        super().__init__("drdrill-service-probe", interval_s, emit_many)
        self.probe, self.now = probe, now

    def tick(self) -> None:
        started = self.now()
        try:
            result = self.probe.check()
        except Exception as exc:  # a probe must not raise; if it does, the attempt failed
            self.report_error(exc)
            result = ProbeResult(False, f"probe raised {type(exc).__name__}: {exc}")
        duration = round(self.now() - started, 6)
        self.emit("probe", {"ok": result.ok, "detail": result.detail[:200],
                            "started_mono": round(started, 6), "duration_s": duration,
                            "latency_s": duration}, started)

    def emit_error(self, thread: str, exc: BaseException) -> None:
        self.emit("background_error", _error_payload(thread, exc), self.now())

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.probe.close()


def _error_payload(thread: str, exc: BaseException) -> dict[str, Any]:
    return {"thread": thread, "error": f"{type(exc).__name__}: {exc}"[:300]}


class CanaryWriter(_Ticker):
    """Writes sequence-numbered markers; each outcome is journaled (durably) before it counts
    (the read-back and the verdict come after ``stop``, which drains the recorder).

    ``first_seq`` lets a resumed run continue the sequence without reusing numbers."""

    def __init__(self, canary: Canary, interval_s: float, emit_many: EmitMany, now: Now,
                 first_seq: int = 1) -> None:
        super().__init__("drdrill-canary", interval_s, emit_many)
        self.canary, self.now = canary, now
        self.next_seq = first_seq

    def tick(self) -> None:
        seq = self.next_seq
        self.next_seq += 1
        sent = self.now()
        try:
            outcome = self.canary.write(seq, time.time())
        except Exception as exc:  # unknown outcome: read-back tells whether it landed
            self.report_error(exc)
            outcome = CanaryWrite(seq, False, f"write raised {type(exc).__name__}: {exc}")
        self.emit("canary_write", {"seq": seq, "acked": outcome.acked,
                                   "sent_mono": round(sent, 6),
                                   "duration_s": round(self.now() - sent, 6),
                                   "detail": outcome.detail[:200]}, sent)

    def emit_error(self, thread: str, exc: BaseException) -> None:
        self.emit("background_error", _error_payload(thread, exc), self.now())

    def read_back(self) -> tuple[bool, list[int], str]:
        """Stop writing, then read what survived. (ok, seqs, detail)."""
        self.stop()
        try:
            present = sorted(self.canary.read_back())
        except Exception as exc:  # a canary must not break the run's record
            return False, [], f"read back failed: {exc}"
        finally:
            self.canary.close()
        return True, present, f"{len(present)} markers present"
