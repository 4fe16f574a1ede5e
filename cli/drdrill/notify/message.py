"""Templated notify messages: what a customer or regulator notice needs (time of the
incident, scope, progress, expected restoration), computed from the run's events alone.

Templates are plain ``str.format_map`` with a fixed set of names; anything else is
rejected at validation time (``template_problems``) so a typo never reaches a regulator.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from drdrill.events import Event
from drdrill.runbook.durations import format_duration

PLACEHOLDERS: Mapping[str, str] = {
    "run_id": "the run's id",
    "runbook": "the runbook's name",
    "mode": "drill or incident",
    "operator": "who runs it",
    "t0": "the disaster / incident instant (UTC), or 'not yet'",
    "declared_at": "incident mode: the declared instant (UTC), else 'n/a'",
    "now": "when the message was composed (UTC)",
    "elapsed": "time since T0",
    "rto_objective": "the RTO objective",
    "expected_restoration": "T0 + the RTO objective (UTC)",
    "scope": "the runbook's description and owner",
    "progress": "steps done / total and the current step",
}


def template_problems(template: str) -> list[str]:
    """Why ``template`` cannot be rendered (empty list = fine)."""
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template)
                  if f is not None]
    except ValueError as exc:
        return [f"is not a valid message template ({exc}) — write {{{{ and }}}} for "
                "literal braces"]
    problems = []
    for name in fields:
        if name not in PLACEHOLDERS:
            shown = f"{{{name}}}" if name.isprintable() else repr(name)  # one line always
            problems.append(f"unknown placeholder {shown} — use one of "
                            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    return problems


class _Facts(dict[str, str]):
    """format_map mapping: a name that slipped past validation renders as itself."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_wall(wall: str) -> datetime:
    return datetime.fromisoformat(wall.replace("Z", "+00:00"))


def _progress(events: Sequence[Event], total: int) -> str:
    done: set[int] = set()
    current = None
    for event in events:
        if event.data.get("phase", "main") != "main":
            continue
        if event.type == "step_started":
            current = str(event.data.get("name"))
        elif event.type == "step_finished":
            done.add(int(event.data.get("index", 0)))
            if current == event.data.get("name"):
                current = None
    text = f"{len(done)} of {total} steps done"
    return text + (f", now: {current}" if current else "")


def message_facts(events: Sequence[Event], now_mono: float, now_wall: str) -> dict[str, str]:
    """Every placeholder's value at ``now_mono`` (a run-clock offset)."""
    started = next((e for e in events if e.type == "run_started"), None)
    meta = started.data if started is not None else {}
    t0 = next((e for e in events if e.type == "t0"), None)
    rto_s = float((meta.get("objectives") or {}).get("rto_s") or 0)
    scope = " — ".join(p for p in (str(meta.get("description") or "").strip(),
                                   f"owner: {meta['owner']}" if meta.get("owner") else "")
                       if p)
    facts = {
        "run_id": str(meta.get("run_id", "")), "runbook": str((meta.get("runbook") or {})
                                                              .get("name", "")),
        "mode": str(meta.get("mode", "")), "operator": str(meta.get("operator", "")),
        "declared_at": str(meta.get("declared_at") or "n/a"), "now": now_wall,
        "rto_objective": format_duration(rto_s), "scope": scope or "n/a",
        "progress": _progress(events, len(meta.get("plan") or [])),
        "t0": "not yet", "elapsed": "n/a", "expected_restoration": "n/a",
    }
    if t0 is not None:
        t0_at = _parse_wall(t0.wall)
        facts["t0"] = _iso(t0_at)
        facts["elapsed"] = format_duration(max(0.0, now_mono - t0.mono))
        facts["expected_restoration"] = _iso(t0_at + timedelta(seconds=rto_s))
    return facts


def render(template: str, facts: Mapping[str, str]) -> str:
    return template.format_map(_Facts(facts))
