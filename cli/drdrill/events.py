"""The one event stream between the engine and its observers.

The journal writer, the live view, probes' recorders and notifiers are all handlers of
the same stream (as in ansible-runner's ``event_handler`` and chaoslib's RunEventHandler).
Handlers are called synchronously, in registration order, under one lock, so the journal
order is the emission order even when background probe threads emit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


def utc_iso(ts: float) -> str:
    """UTC wall time with millisecond precision, e.g. 2026-11-22T20:39:13.123Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Event:
    """``mono`` is seconds since the run's origin on the monotonic clock: every duration is
    computed from it; ``wall`` is for display and correlation only."""

    type: str
    data: Mapping[str, Any]
    wall: str
    mono: float


class EventHandler(Protocol):
    def handle(self, event: Event) -> None: ...


class Clock:
    """Monotonic run clock with a wall-clock anchor taken at the same instant."""

    def __init__(self, mono_origin: float | None = None, wall_origin: float | None = None) -> None:
        self.mono_origin = time.monotonic() if mono_origin is None else mono_origin
        self.wall_origin = time.time() if wall_origin is None else wall_origin

    def now(self) -> float:
        """Seconds since the origin, monotonic."""
        return time.monotonic() - self.mono_origin

    def wall_at(self, offset: float) -> str:
        return utc_iso(self.wall_origin + offset)


class EventBus:
    """Fan-out of events to handlers. ``emit`` stamps the event with the run clock."""

    def __init__(self, clock: Clock,
                 redact: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> None:
        self.clock = clock
        self._redact = redact
        self._handlers: list[EventHandler] = []
        self._critical: set[int] = set()
        self._failed: set[int] = set()  # handlers whose error was journaled already
        self._lock = threading.RLock()

    def subscribe(self, handler: EventHandler, critical: bool = False) -> None:
        """``critical`` handlers (the journal) propagate their errors: evidence that cannot
        be written must stop the run. Any other handler's error is isolated (see emit)."""
        with self._lock:
            self._handlers.append(handler)
            if critical:
                self._critical.add(id(handler))

    def emit(self, type_: str, data: Mapping[str, Any], at: float | None = None) -> Event:
        """Emit ``type_`` now (or at the monotonic offset ``at`` measured earlier).

        The instant is read before taking the lock, so waiting for another thread's
        journal fsync never shifts an event. A non-critical handler that raises (a bug in
        the live view, say) is skipped for this event and journaled once as
        ``handler_error``; the drill's outcome never depends on an observer."""
        mono = self.clock.now() if at is None else at
        with self._lock:
            payload = self._redact(data) if self._redact is not None else data
            event = Event(type_, dict(payload), self.clock.wall_at(mono), round(mono, 6))
            failures: list[tuple[EventHandler, BaseException]] = []
            for handler in self._handlers:
                if id(handler) in self._critical:
                    handler.handle(event)
                    continue
                try:
                    handler.handle(event)
                except Exception as exc:  # isolate observers from the drill
                    failures.append((handler, exc))
            for failed, error in failures:
                self._report_failure(failed, error, event)
            return event

    def _report_failure(self, handler: EventHandler, exc: BaseException, event: Event) -> None:
        key = id(handler)
        if key in self._failed:
            return
        self._failed.add(key)
        self.emit("handler_error", {"handler": type(handler).__name__,
                                    "error": f"{type(exc).__name__}: {exc}"[:300],
                                    "event_type": event.type})


class CallbackHandler:
    """Adapter so a plain function can observe the stream (tests, notifiers)."""

    def __init__(self, fn: Callable[[Event], None]) -> None:
        self._fn = fn

    def handle(self, event: Event) -> None:
        self._fn(event)
