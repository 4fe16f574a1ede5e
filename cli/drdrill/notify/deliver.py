"""The notifier: an event handler that posts webhooks from background threads.

``handle`` runs under the bus lock and only classifies and enqueues (never I/O), so a slow
or dead webhook cannot hold the drill's clock or the other handlers. One worker thread per
target delivers with a bounded per-attempt timeout, retries with exponential backoff, and
journals every attempt (``notify_sent``, ``notify_failed``, ``notify_gave_up``) through the
bus. Lock order is always worker emit lock -> bus lock; ``handle`` (bus lock held) never
takes an emit lock, so the two cannot deadlock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drdrill import __version__
from drdrill.events import Event, EventBus
from drdrill.notify.texts import Classifier, body, event_text, wants
from drdrill.runbook.model import NotifyTarget

DEFAULT_GRACE_S = 5.0
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class Delivery:
    id: int
    event: str  # the notification's name, or "message" for a notify step
    body: bytes


def post(target: NotifyTarget, payload: bytes, token: str | None) -> int:
    """One attempt: POST ``payload``; return the HTTP status or raise OSError/HTTPError."""
    headers = {"Content-Type": "application/json", "User-Agent": f"drdrill/{__version__}"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target.url, data=payload, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=target.timeout_s) as response:  # noqa: S310
        response.read(65536)
        return int(response.status)


class _Worker:
    """Deliveries of one target, in order of due time, on one daemon thread."""

    def __init__(self, target: NotifyTarget, bus: EventBus, token: str | None,
                 backoff_s: float) -> None:
        self.target, self._bus, self._token, self._backoff = target, bus, token, backoff_s
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int, Delivery]] = []  # (due, id, attempt, d)
        self._in_flight: tuple[int, Delivery] | None = None
        self._order = itertools.count()
        self._emit_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"notify-{target.name}",
                                        daemon=True)
        self._thread.start()

    def enqueue(self, delivery: Delivery) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), next(self._order), 1, delivery))
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._heap and self._in_flight is None

    def _next(self) -> tuple[int, Delivery] | None:
        with self._cond:
            while not self._closed:
                if self._heap:
                    due = self._heap[0][0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        _, _, attempt, delivery = heapq.heappop(self._heap)
                        self._in_flight = (attempt, delivery)
                        return attempt, delivery
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            attempt, delivery = item
            self._attempt(attempt, delivery)

    def _attempt(self, attempt: int, delivery: Delivery) -> None:
        started = time.monotonic()
        base = {"target": self.target.name, "event": delivery.event, "delivery": delivery.id,
                "attempt": attempt}
        try:
            status = post(self.target, delivery.body, self._token)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, reset, timeout, bad URL
            status, error = 0, f"{type(exc).__name__}: {exc}"
        took = round(time.monotonic() - started, 6)
        if error is None:
            self._emit("notify_sent", {**base, "status_code": status, "duration_s": took})
        elif attempt <= self.target.retries:
            delay = min(self._backoff * 2 ** (attempt - 1), BACKOFF_MAX_S)
            with self._cond:
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order),
                                            attempt + 1, delivery))
            self._emit("notify_failed", {**base, "error": error, "duration_s": took,
                                         "retry_in_s": delay})
        else:
            self._emit("notify_failed", {**base, "error": error, "duration_s": took,
                                         "retry_in_s": None})
            self._emit("notify_gave_up", {**base, "attempts": attempt,
                                          "reason": f"{attempt} attempts failed"})
        with self._cond:  # only now idle: close() cannot miss a give-up in between
            self._in_flight = None
            self._cond.notify_all()

    def _emit(self, type_: str, data: Mapping[str, Any]) -> None:
        with self._emit_lock:
            if not self._closed:
                self._bus.emit(type_, data)

    def give_up(self, reason: str) -> None:
        """Close: journal every delivery not made yet as given up; emit nothing after."""
        with self._emit_lock:
            with self._cond:
                pending = [(a - 1, d) for _, _, a, d in sorted(self._heap)]  # made so far
                if self._in_flight is not None:
                    pending.insert(0, self._in_flight)
                latest: dict[int, tuple[int, Delivery]] = {}
                for attempt, delivery in pending:  # a retry queued while its attempt ends
                    latest[delivery.id] = max(latest.get(delivery.id, (0, delivery)),
                                              (attempt, delivery), key=lambda x: x[0])
                left = list(latest.values())
                self._heap.clear()
                self._closed = True
                self._cond.notify_all()
            for attempt, delivery in left:
                self._bus.emit("notify_gave_up", {
                    "target": self.target.name, "event": delivery.event,
                    "delivery": delivery.id, "attempts": attempt, "reason": reason})


class Notifier:
    """Event handler feeding the workers; also posts notify steps' messages."""

    def __init__(self, targets: Sequence[NotifyTarget], bus: EventBus,
                 secret_vars: Mapping[str, Any], backoff_s: float = BACKOFF_BASE_S) -> None:
        self._bus = bus
        self._ids = itertools.count(1)
        self._classifier = Classifier()
        self._workers = [_Worker(t, bus, _token(t, secret_vars), backoff_s) for t in targets]

    @property
    def target_names(self) -> list[str]:
        return [w.target.name for w in self._workers]

    def handle(self, event: Event) -> None:
        if event.type.startswith("notify_") or not self._workers:
            return
        for name, data in self._classifier.classify(event):
            facts = self._classifier.facts(event.mono, event.wall)
            text = event_text(name, data, facts)
            detail_event = Event(event.type, dict(data), event.wall, event.mono)
            for worker in self._workers:
                if wants(worker.target.events, name):
                    worker.enqueue(Delivery(next(self._ids), name, body(
                        worker.target.format, name, text, detail_event, facts)))

    def post_message(self, text: str, targets: Sequence[str], facts: Mapping[str, str],
                     event: Event) -> list[str]:
        """Queue a notify step's message to ``targets`` (all when empty); return the names."""
        chosen = [w for w in self._workers if not targets or w.target.name in targets]
        for worker in chosen:
            worker.enqueue(Delivery(next(self._ids), "message",
                                    body(worker.target.format, "message", text, event, facts)))
        return [w.target.name for w in chosen]

    def close(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        """Give pending deliveries ``grace_s`` (call without holding the bus lock), then
        journal what is left as given up."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not all(w.idle() for w in self._workers):
            time.sleep(0.05)
        for worker in self._workers:
            worker.give_up(f"run ended; not delivered within the {grace_s:g}s grace period")


def _token(target: NotifyTarget, secret_vars: Mapping[str, Any]) -> str | None:
    if target.headers_secret is None:
        return None
    value = secret_vars.get(target.headers_secret)
    return None if value is None else str(value)
