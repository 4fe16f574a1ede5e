"""``record.json``: the run summary, derived from the journal alone (never from live state),
so that ``build_record(read_events(journal))`` reproduces the written record exactly."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drdrill.events import Event
from drdrill.journal.store import GENESIS, iter_lines, line_hash
from drdrill.measure.isolation import isolated_summary
from drdrill.measure.metrics import compute_results, probe_attempts
from drdrill.measure.split import time_split
from drdrill.measure.verdict import data_verified, verdict_notes

RECORD_NAME = "record.json"


def _step_row(key: tuple[str, int], data: Mapping[str, Any]) -> dict[str, Any]:
    return {"index": key[1], "name": data.get("name"), "kind": data.get("kind"),
            "phase": key[0], "hosts": list(data.get("hosts", [])), "started_at": None,
            "start_s": None, "finished_at": None, "end_s": None, "duration_s": None,
            "status": "running", "attempts": 0, "error": None, "manual": None,
            "verification": bool(data.get("verification", False)),
            "group": data.get("group")}  # the parallel group it ran in, or None


def step_rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The record's ``steps``: one row per (phase, index), from step events."""
    steps: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        if event.type not in ("step_started", "step_finished"):
            continue
        data = event.data
        key = (str(data.get("phase", "main")), int(data.get("index", 0)))
        step = steps.get(key)
        if step is None:  # a step that never started (no-go at its gate) only finishes
            step = steps[key] = _step_row(key, data)
        if event.type == "step_started":
            if step["started_at"] is None:
                step.update(started_at=event.wall, start_s=event.mono)
            step["attempts"] = int(data.get("attempt", 1))
        else:
            start = step["start_s"]
            step.update(finished_at=event.wall, end_s=event.mono, status=data.get("status"),
                        error=data.get("error"),
                        duration_s=0.0 if start is None else round(event.mono - start, 6))
            if data.get("manual"):
                step["manual"] = data["manual"]
    return list(steps.values())


def _probe_transitions(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Up/down changes of the service probe, at attempt starts."""
    transitions: list[dict[str, Any]] = []
    last: bool | None = None
    for start, ok in probe_attempts(events):
        if ok != last:
            transitions.append({"mono": start, "ok": ok})
            last = ok
    return transitions


def build_record(events: Sequence[Event], last_hash: str = GENESIS) -> dict[str, Any]:
    """The record of a run from its events. ``last_hash`` is the journal's final line hash."""
    started = next((e for e in events if e.type == "run_started"), None)
    if started is None:
        raise ValueError("journal has no run_started event")
    meta = started.data
    finished = next((e for e in reversed(events) if e.type == "run_finished"), None)
    objectives = dict(meta.get("objectives", {}))
    results = compute_results(events, float(objectives.get("rto_s", 0)),
                              float(objectives.get("rpo_s", 0)))
    checkpoints = [e for e in events if e.type == "checkpoint"]
    steps = step_rows(events)
    readback = next((e for e in reversed(events) if e.type == "canary_readback"), None)
    return {
        "run_id": meta.get("run_id"),
        "runbook": meta.get("runbook"),
        "mode": meta.get("mode"),
        "environment": meta.get("environment"),
        "exercise": meta.get("exercise"),
        "isolated": isolated_summary(events),
        "declared_at": meta.get("declared_at"),
        "started_at": started.wall,
        "finished_at": finished.wall if finished else None,
        "status": finished.data.get("status") if finished else "running",
        "reason": finished.data.get("reason") if finished else None,
        "verdict_notes": verdict_notes(results),
        "operator": meta.get("operator"),
        "inventory_sha256": (meta.get("inventory") or {}).get("sha256"),
        "drdrill_version": meta.get("drdrill_version"),
        "objectives": objectives,
        "results": {**results.as_dict(),
                    "data_verified": data_verified(steps, results.lost_writes,
                                                   results.rpo_basis is not None),
                    "time_split": _time_split(events, results.t0_mono,
                                              results.service_restored_mono)},
        "checkpoints": {str(e.data.get("name")): e.wall for e in checkpoints},
        "checkpoint_offsets_s": {str(e.data.get("name")): e.mono for e in checkpoints},
        "steps": steps,
        "rollback": rollback_summary(events, results.disaster_started_mono),
        "service_interval_s": meta.get("service_interval_s"),
        "canary_interval_s": meta.get("canary_interval_s"),
        "probe_transitions": _probe_transitions(events),
        "canary": {
            "acked": results.acked_writes,
            "lost_seqs": list(results.lost_seqs),
            "readback_ok": bool(readback.data.get("ok")) if readback else None,
            "readback_detail": readback.data.get("detail") if readback else None,
        },
        "gaps": [{"start_mono": e.data.get("gap_start_mono"),
                  "end_mono": e.data.get("gap_end_mono"),
                  "in_flight": e.data.get("in_flight"), "decision": e.data.get("decision")}
                 for e in events if e.type == "resumed"],
        "background_errors": _errors(events, "background_error", "thread"),
        "handler_errors": _errors(events, "handler_error", "handler"),
        "journal_last_hash": last_hash,
    }


def rollback_summary(events: Sequence[Event], disaster_began: float | None
                     ) -> dict[str, Any] | None:
    """When the rollback ran, why, how it ended and how long it took; ``from_disaster_s``
    is the disaster step's start (e.g. "deploy started") to the rollback's end (e.g. "N
    verified again"). None when no rollback ran."""
    started = next((e for e in events if e.type == "rollback_started"), None)
    if started is None:
        return None
    finished = next((e for e in reversed(events) if e.type == "rollback_finished"), None)
    end = finished.mono if finished is not None else None
    return {"reason": started.data.get("reason"), "started_s": started.mono,
            "finished_s": end, "status": finished.data.get("status") if finished else None,
            "duration_s": None if end is None else round(end - started.mono, 6),
            "from_disaster_s": (None if end is None or disaster_began is None
                                else round(end - disaster_began, 6))}


def _errors(events: Sequence[Event], type_: str, who: str) -> list[dict[str, Any]]:
    """Observer and background-thread failures: shown, since a probe stream that died
    silently would make an outage look like no data."""
    return [{"mono": e.mono, who: e.data.get(who), "error": e.data.get("error")}
            for e in events if e.type == type_]


def _time_split(events: Sequence[Event], t0: float | None,
                restored: float | None) -> dict[str, float] | None:
    split = time_split(events, t0, restored)
    return None if split is None else split.as_dict()


def journal_last_hash(journal: Path) -> str:
    last = GENESIS
    for line in iter_lines(journal):
        last = line_hash(line.raw)
    return last


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Atomically write record.json (0600): a crash never leaves a half record."""
    path = run_dir / RECORD_NAME
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
