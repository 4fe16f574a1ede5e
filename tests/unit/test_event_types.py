"""docs/journal.md documents exactly the event types of drdrill.journal.event_types, with
every payload field; and the package emits no type that is not defined there."""

from __future__ import annotations

import re
from pathlib import Path

from drdrill.journal.event_types import PAYLOADS, EventType, payload_fields

ROOT = Path(__file__).resolve().parents[2]


def _doc_rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "journal.md").read_text().splitlines():
        match = re.match(r"^\| ([a-z0-9_]+) \| (.*) \|$", line)
        if match and match.group(1) != "type":
            rows[match.group(1)] = match.group(2)
    return rows


def test_docs_table_lists_exactly_the_defined_types() -> None:
    documented = set(_doc_rows())
    defined = {t.value for t in EventType}
    assert documented == defined, (sorted(documented - defined), sorted(defined - documented))
    assert set(PAYLOADS) == set(EventType)


def test_every_payload_field_is_documented_in_its_row() -> None:
    rows = _doc_rows()
    missing = {t.value: [f for f in payload_fields(t)
                         if not re.search(rf"\b{re.escape(f)}\b", rows[t.value])]
               for t in EventType}
    assert not {k: v for k, v in missing.items() if v}, missing


def test_the_package_emits_only_defined_types() -> None:
    emitted: set[str] = set()
    for path in (ROOT / "cli" / "drdrill").rglob("*.py"):
        emitted |= set(re.findall(r"""emit\(\s*["']([a-z_0-9]+)["']""", path.read_text()))
    assert emitted, "no emit() calls found: the pattern is stale"
    assert emitted <= {t.value for t in EventType}, sorted(emitted - {t.value for t in EventType})
