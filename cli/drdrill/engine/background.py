"""The service probe and the canary: background threads on their own fixed schedules,
from before the first step to the end of the run, emitting every result as an event.

They tick on an absolute schedule (origin + k * interval) so a slow check never makes the
sampling drift; a check that overruns its slot is followed at once by the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from drdrill.probes.base import Canary, Probe

Emit = Callable[[str, Mapping[str, Any]], None]
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
            self.tick()
            tick += 1
            next_at = origin + tick * self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # overran: skip missed slots, keep the grid
                tick += int(-delay // self.interval_s) + 1
                delay = origin + tick * self.interval_s - time.monotonic()
            self.stopping.wait(max(delay, 0.0))

    def tick(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)


class ServiceMonitor(_Ticker):
    """Checks what customers use; every result becomes a ``probe`` event."""

    def __init__(self, probe: Probe, interval_s: float, emit: Emit, now: Now) -> None:
        super().__init__("drdrill-service-probe", interval_s)
        self.probe, self.emit, self.now = probe, emit, now

    def tick(self) -> None:
        started = self.now()
        result = self.probe.check()
        self.emit("probe", {"ok": result.ok, "detail": result.detail[:200],
                            "started_mono": round(started, 6),
                            "latency_s": round(self.now() - started, 6)})

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.probe.close()


class CanaryWriter(_Ticker):
    """Writes sequence-numbered markers; each outcome is journaled (durably) before it counts.

    ``first_seq`` lets a resumed run continue the sequence without reusing numbers."""

    def __init__(self, canary: Canary, interval_s: float, emit: Emit, now: Now,
                 first_seq: int = 1) -> None:
        super().__init__("drdrill-canary", interval_s)
        self.canary, self.emit, self.now = canary, emit, now
        self.next_seq = first_seq

    def tick(self) -> None:
        seq = self.next_seq
        self.next_seq += 1
        sent = self.now()
        outcome = self.canary.write(seq, time.time())
        self.emit("canary_write", {"seq": seq, "acked": outcome.acked,
                                   "sent_mono": round(sent, 6), "detail": outcome.detail[:200]})

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
