"""Which run events become which notifications, and the text a person reads in each.

Pure functions of events, so the notifier's decisions can be unit-tested and re-derived
from a journal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from drdrill import __version__
from drdrill.events import Event
from drdrill.notify.message import message_facts
from drdrill.runbook.durations import format_duration

NOTIFY_EVENTS = ("run_started", "t0", "gate_waiting", "manual_overdue", "step_failed",
                 "service_restored", "objective_missed", "run_finished")
DETAIL_KEYS = ("index", "name", "phase", "status", "error", "reason", "source", "step",
               "owner", "what", "waited_s", "objective")


def wants(events: Sequence[str], name: str) -> bool:
    """Whether a target subscribed to ``events`` gets ``name``. An overdue manual step is an
    escalation of a waiting gate: gate_waiting subscribers get it too. Notify-step messages
    go to every target a step names."""
    if name == "message":
        return True
    return name in events or (name == "manual_overdue" and "gate_waiting" in events)


def _who(data: Mapping[str, Any]) -> str:
    return f" (owner: {data['owner']})" if data.get("owner") else ""


def event_text(name: str, data: Mapping[str, Any], facts: Mapping[str, str]) -> str:
    """One line a person reads in a chat channel or an e-mail subject."""
    head = f"[drdrill] {facts['runbook']} ({facts['mode']}, run {facts['run_id']})"
    step = f"{data.get('what', 'step')} {data.get('name')!r}"
    if name == "run_started":
        return f"{head} started by {facts['operator']}. Scope: {facts['scope']}."
    if name == "t0":
        return (f"{head}: T0 at {facts['t0']} ({data.get('source')}); RTO objective "
                f"{facts['rto_objective']}, expected restoration by "
                f"{facts['expected_restoration']}.")
    if name == "gate_waiting":
        return f"{head}: waiting for a person at {step}{_who(data)}; {facts['progress']}."
    if name == "manual_overdue":
        waited = format_duration(float(data.get("waited_s") or 0))
        return (f"{head}: ESCALATION: {step} not acknowledged after {waited}{_who(data)}; "
                f"{facts['progress']}.")
    if name == "step_failed":
        return f"{head}: step {data.get('name')!r} {data.get('status')}: {data.get('error')}"
    if name == "service_restored":
        return f"{head}: service restored {facts['elapsed']} after T0 ({facts['t0']})."
    if name == "objective_missed":
        return f"{head}: {data.get('objective')} objective missed: {data.get('reason')}"
    reason = f": {data['reason']}" if data.get("reason") else ""
    return f"{head} finished {data.get('status')}{reason}. {facts['progress']}."


def body(fmt: str, name: str, text: str, event: Event, facts: Mapping[str, str]) -> bytes:
    """The POST body: a JSON object, or Slack's ``{"text": ...}``."""
    if fmt == "slack":
        return json.dumps({"text": text}).encode()
    details = {k: event.data[k] for k in DETAIL_KEYS if k in event.data}
    return json.dumps({"event": name, "text": text, "at": event.wall, "run_id": facts["run_id"],
                       "runbook": facts["runbook"], "mode": facts["mode"], "t0": facts["t0"],
                       "details": details, "drdrill_version": __version__},
                      default=str).encode()


class Classifier:
    """Turns the stream into notification names; keeps what it needs to know when the
    service came back and when the RTO budget ran out (like the live view does)."""

    def __init__(self) -> None:
        self.events: list[Event] = []  # run_started, t0, steps: for message facts
        self.t0_mono: float | None = None
        self.recovering = False
        self.restored = False
        self.missed: set[str] = set()
        self.rto_s = 0.0

    def classify(self, event: Event) -> list[tuple[str, Mapping[str, Any]]]:
        kind, data = event.type, event.data
        if kind in ("run_started", "t0", "step_started", "step_finished"):
            self.events.append(event)
        if kind == "run_started":
            self.rto_s = float((data.get("objectives") or {}).get("rto_s") or 0)
            return [("run_started", data)]
        if kind == "t0" and self.t0_mono is None:
            self.t0_mono = event.mono
            return [("t0", data)]
        if kind == "recovery_started":
            self.recovering = True
        if kind in ("gate_waiting", "manual_overdue"):
            return [(kind, data)]
        if kind == "step_finished" and data.get("status") in ("failed", "timeout"):
            return [("step_failed", data)]
        if kind == "probe":
            return self._probe(event)
        if kind == "run_finished":
            return self._finished(data)
        return []

    def _probe(self, event: Event) -> list[tuple[str, Mapping[str, Any]]]:
        if self.t0_mono is None or self.restored:
            return []
        if event.data.get("ok") and self.recovering:
            self.restored = True
            return [("service_restored", event.data)]
        late = self.rto_s > 0 and event.mono - self.t0_mono > self.rto_s
        if late and "RTO" not in self.missed:
            self.missed.add("RTO")
            return [("objective_missed", {"objective": "RTO", "reason": (
                f"the service is not restored {format_duration(self.rto_s)} after T0")})]
        return []

    def _finished(self, data: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
        out: list[tuple[str, Mapping[str, Any]]] = []
        reason = str(data.get("reason") or "")
        for objective in ("RTO", "RPO"):
            if f"{objective} objective missed" in reason and objective not in self.missed:
                self.missed.add(objective)
                out.append(("objective_missed", {"objective": objective, "reason": reason}))
        out.append(("run_finished", data))
        return out

    def facts(self, now_mono: float, now_wall: str) -> dict[str, str]:
        return message_facts(self.events, now_mono, now_wall)
