"""Reports derived from a run directory only (journal.jsonl + record.json), never from live
state, so any report can be rebuilt at any time: html, markdown, junit, history, bundle.

``write_reports(run_dir)`` is what the engine calls at the end of every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from drdrill.errors import BadInput
from drdrill.events import Event
from drdrill.journal.store import JOURNAL_NAME, read_events

RECORD_NAME = "record.json"

__all__ = ["DEFAULT_NAMES", "RECORD_NAME", "TEXT_FORMATS", "load_run", "read_record", "render",
           "write_atomic", "write_reports"]


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """``record.json`` as a dict, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads((run_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _build_record(journal: Path, events: list[Event]) -> dict[str, Any] | None:
    """The record derived from the journal (``drdrill.journal.record.build_record``)."""
    from drdrill.journal.record import build_record, journal_last_hash

    try:
        return build_record(events, journal_last_hash(journal))
    except ValueError:  # no run_started: nothing to derive from
        return None


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[Event]]:
    """(record, events) of a run directory. The record is ``record.json``, or derived from
    the journal when that file is missing; raises BadInput when neither is usable."""
    journal = run_dir / JOURNAL_NAME
    events = read_events(journal) if journal.is_file() else []
    record = read_record(run_dir)
    if record is None and events:
        record = _build_record(journal, events)
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
    try:
        record, events = load_run(run_dir)
    except Exception as exc:  # reported, never raised into the engine
        return [f"reports not written: {exc}"]
    problems = []
    for fmt in ("html", "md"):
        name = DEFAULT_NAMES[fmt]
        try:
            write_atomic(run_dir / name, render(record, events, fmt))
        except Exception as exc:
            problems.append(f"{name} not written: {type(exc).__name__}: {exc}")
    return problems


TEXT_FORMATS = ("html", "md", "json", "junit")
DEFAULT_NAMES = {"html": "report.html", "md": "report.md", "junit": "junit.xml"}


def render(record: dict[str, Any], events: list[Event], fmt: str) -> str:
    """One text report of a run: ``html``, ``md``, ``json`` (the record) or ``junit``."""
    if fmt == "html":
        from drdrill.report.html import render_html

        return render_html(record, events)
    if fmt == "md":
        from drdrill.report.markdown import render_markdown

        return render_markdown(record, events)
    if fmt == "junit":
        from drdrill.report.junit import render_junit

        return render_junit(record)
    if fmt == "json":
        return json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    raise BadInput(f"unknown report format {fmt!r}", hint=f"use one of {', '.join(TEXT_FORMATS)}")
