"""The service probe and the canary: background threads on their own fixed schedules,
from before the first step to the end of the run, emitting every result as an event.

They tick on an absolute schedule (origin + k * interval) so a slow check never makes the
sampling drift; a check that overruns its slot is followed at once by the next.

Every attempt is journaled AT its start instant (the event's ``mono``) with its
``duration_s``: a hung attempt that fails after 2 s failed when it started, as an
independent client would see it (DESIGN.md "service probe"). A check that raises is a
failed attempt plus a ``background_error`` event, never the end of the stream.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from drdrill.probes.base import Canary, CanaryWrite, Probe, ProbeResult

EmitAt = Callable[[str, Mapping[str, Any], float], None]
Now = Callable[[], float]


class _Ticker(threading.Thread):
    def __init__(self, name: str, interval_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self.interval_s = max(interval_s, 0.01)
        self.stopping = threading.Event()

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


class ServiceMonitor(_Ticker):
    """Checks what customers use; every attempt becomes a ``probe`` event at its start."""

    def __init__(self, probe: Probe, interval_s: float, emit: EmitAt, now: Now) -> None:
        super().__init__("drdrill-service-probe", interval_s)
        self.probe, self.emit, self.now = probe, emit, now

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
    """Writes sequence-numbered markers; each outcome is journaled (durably) before it counts.

    ``first_seq`` lets a resumed run continue the sequence without reusing numbers."""

    def __init__(self, canary: Canary, interval_s: float, emit: EmitAt, now: Now,
                 first_seq: int = 1) -> None:
        super().__init__("drdrill-canary", interval_s)
        self.canary, self.emit, self.now = canary, emit, now
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
