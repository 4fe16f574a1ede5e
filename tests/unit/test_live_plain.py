"""The plain live view prints text for people, never a Python dict repr."""

from __future__ import annotations

from drdrill.events import Event
from drdrill.view.live import _plain_line


def _line(kind: str, data: dict[str, object]) -> str | None:
    return _plain_line(Event(kind, data, "2026-01-01T00:00:00Z", 1.0))


def test_rollback_started_prints_the_reason_text() -> None:
    line = _line("rollback_started", {"reason": "interrupted by the operator"})
    assert line == "rollback started: interrupted by the operator"


def test_other_events_print_key_value_pairs_not_reprs() -> None:
    line = _line("step_retry", {"index": 2, "name": "promote", "attempt": 2})
    assert line is not None and "{" not in line and "'" not in line
    assert "name=promote" in line and "attempt=2" in line
