"""Reports derived from a run directory only (journal.jsonl + record.json), never from live
state, so any report can be rebuilt at any time: html, markdown, junit, history, bundle.

``write_reports(run_dir)`` is what the engine calls at the end of every run.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from drdrill.errors import BadInput
from drdrill.events import Event
from drdrill.journal.store import JOURNAL_NAME, read_events

RECORD_NAME = "record.json"

__all__ = ["RECORD_NAME", "load_run", "read_record", "write_atomic", "write_reports"]


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """``record.json`` as a dict, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads((run_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _build_record(events: list[Event]) -> dict[str, Any] | None:
    """The record derived from the journal by ``drdrill.journal.record.build_record``."""
    try:
        module = importlib.import_module("drdrill.journal.record")
    except ImportError:
        return None
    build = getattr(module, "build_record", None)
    record = build(events) if callable(build) else None
    return record if isinstance(record, dict) else None


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[Event]]:
    """(record, events) of a run directory. The record is ``record.json``, or derived from
    the journal when that file is missing; raises BadInput when neither is usable."""
    journal = run_dir / JOURNAL_NAME
    events = read_events(journal) if journal.is_file() else []
    record = read_record(run_dir)
    if record is None and events:
        record = _build_record(events)
    if record is None:
        raise BadInput(f"{run_dir} holds no readable {RECORD_NAME} or {JOURNAL_NAME}",
                       hint="RUN is a run id under --runs-dir or a path to a run directory")
    return record, events


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_reports(run_dir: Path) -> list[str]:
    """Write ``report.html`` and ``report.md`` into ``run_dir``; never raises (a report must
    not fail a drill): returns the problems met, empty when both were written."""
    from drdrill.report.html import render_html
    from drdrill.report.markdown import render_markdown

    try:
        record, events = load_run(run_dir)
    except Exception as exc:  # reported, never raised into the engine
        return [f"reports not written: {exc}"]
    problems = []
    for name, render in (("report.html", render_html), ("report.md", render_markdown)):
        try:
            write_atomic(run_dir / name, render(record, events))
        except Exception as exc:
            problems.append(f"{name} not written: {type(exc).__name__}: {exc}")
    return problems
