"""Where the time from T0 to service restored went: automated steps, human steps, waiting.

What a drill review discusses: a 20-minute RTO of which 14 minutes were people reading a
runbook is a different problem from 14 minutes of a slow playbook. Computed from the
journal alone: step intervals (first start to finish) and gate waits (``gate_waiting`` to
``gate``) clipped to [T0, service restored]. Human = manual steps and gate waits;
automated = playbook, probe and notify steps; waiting = the rest (wait_for and pause
steps, time between steps, and in incident mode the time before drdrill started).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from drdrill.events import Event

AUTOMATED_KINDS = ("playbook", "command", "probe", "notify")
HUMAN_KINDS = ("manual",)


@dataclass(frozen=True)
class TimeSplit:
    automated_s: float
    human_s: float
    waiting_s: float

    def as_dict(self) -> dict[str, float]:
        return {"automated_s": self.automated_s, "human_s": self.human_s,
                "waiting_s": self.waiting_s}


def _intervals(events: Sequence[Event]) -> list[tuple[str, float, float]]:
    """(class, start, end) of every main-phase step and gate wait."""
    starts: dict[int, tuple[str, float]] = {}
    gates: dict[int, float] = {}
    out: list[tuple[str, float, float]] = []
    for event in events:
        data = event.data
        if data.get("phase", "main") != "main":
            continue
        index = int(data.get("index", 0))
        if event.type == "step_started" and index not in starts:
            starts[index] = (str(data.get("kind")), event.mono)
        elif event.type == "step_finished" and index in starts:
            kind, start = starts.pop(index)
            label = ("human" if kind in HUMAN_KINDS else
                     "automated" if kind in AUTOMATED_KINDS else "waiting")
            out.append((label, start, event.mono))
        elif event.type == "gate_waiting" and data.get("what") == "gate before":
            gates[index] = event.mono
        elif event.type == "gate" and index in gates:
            out.append(("human", gates.pop(index), event.mono))
    return out


def time_split(events: Sequence[Event], t0: float | None,
               restored: float | None) -> TimeSplit | None:
    """The split of [t0, restored]; None when either end is unknown (not measured)."""
    if t0 is None or restored is None or restored < t0:
        return None
    spent = _covered(_intervals(events), t0, restored)
    automated, human = round(spent["automated"], 6), round(spent["human"], 6)
    waiting = round(max(0.0, (restored - t0) - automated - human), 6)
    return TimeSplit(automated, human, waiting)


def _covered(intervals: list[tuple[str, float, float]], t0: float,
             restored: float) -> dict[str, float]:
    """Seconds of [t0, restored] covered by human, else by automated intervals. Members of
    a parallel group overlap: each instant counts once (a person's time first), so the
    three parts still add up to the window."""
    clipped = [(label, max(start, t0), min(end, restored)) for label, start, end in intervals
               if label in ("human", "automated") and min(end, restored) > max(start, t0)]
    cuts = sorted({t for _, start, end in clipped for t in (start, end)})
    spent = {"automated": 0.0, "human": 0.0}
    for left, right in zip(cuts, cuts[1:], strict=False):
        labels = {label for label, start, end in clipped if start <= left and right <= end}
        if labels:
            spent["human" if "human" in labels else "automated"] += right - left
    return spent
