"""The one event stream between the engine and its observers.

The journal writer, the live view, probes' recorders and notifiers are all handlers of
the same stream (as in ansible-runner's ``event_handler`` and chaoslib's RunEventHandler).
Handlers are called synchronously, in registration order, under one lock, so the journal
order is the emission order even when background probe threads emit. A durable handler
(the journal) writes under that lock but waits for its fsync after releasing it, so
threads emitting at once share one fsync instead of queueing behind each other's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable


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


@runtime_checkable
class DurableHandler(Protocol):
    """A handler whose write (``append``, in order, under the bus lock) and durability wait
    (``sync_through``, outside it) are separate: see journal/store.py."""

    def handle(self, event: Event) -> None: ...

    def append(self, event: Event) -> int: ...

    def sync_through(self, seq: int) -> None: ...


Emission = tuple[str, Mapping[str, Any], float]  # (type, data, monotonic offset)


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
        ``handler_error``; the drill's outcome never depends on an observer. Returns once
        the durable handlers have the event on disk."""
        mono = self.clock.now() if at is None else at
        return self.emit_many([(type_, data, mono)])[0]

    def emit_many(self, emissions: list[Emission]) -> list[Event]:
        """Emit several events measured earlier (a background thread's backlog) in order,
        waiting for the disk once for all of them."""
        pending: dict[int, tuple[DurableHandler, int]] = {}
        events: list[Event] = []
        with self._lock:
            for type_, data, mono in emissions:
                events.append(self._dispatch(type_, data, mono, pending))
        for handler, seq in pending.values():
            handler.sync_through(seq)
        return events

    def _dispatch(self, type_: str, data: Mapping[str, Any], mono: float,
                  pending: dict[int, tuple[DurableHandler, int]]) -> Event:
        payload = self._redact(data) if self._redact is not None else data
        event = Event(type_, dict(payload), self.clock.wall_at(mono), round(mono, 6))
        failures: list[tuple[EventHandler, BaseException]] = []
        for handler in self._handlers:
            if id(handler) in self._critical:
                if isinstance(handler, DurableHandler):
                    pending[id(handler)] = (handler, handler.append(event))
                else:
                    handler.handle(event)
                continue
            try:
                handler.handle(event)
            except Exception as exc:  # isolate observers from the drill
                failures.append((handler, exc))
        for failed, error in failures:
            self._report_failure(failed, error, event, pending)
        return event

    def _report_failure(self, handler: EventHandler, exc: BaseException, event: Event,
                        pending: dict[int, tuple[DurableHandler, int]]) -> None:
        key = id(handler)
        if key in self._failed:
            return
        self._failed.add(key)
        self._dispatch("handler_error", {"handler": type(handler).__name__,
                                         "error": f"{type(exc).__name__}: {exc}"[:300],
                                         "event_type": event.type},
                       self.clock.now(), pending)


class CallbackHandler:
    """Adapter so a plain function can observe the stream (tests, notifiers)."""

    def __init__(self, fn: Callable[[Event], None]) -> None:
        self._fn = fn

    def handle(self, event: Event) -> None:
        self._fn(event)
