"""Secret values never reach the journal, the record, reports or the terminal: every event
passes through a redactor before any handler sees it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

MASK = "********"


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    return value


Redactor = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def make_redactor(secrets: Sequence[str]) -> Redactor | None:
    """A function masking every secret value inside event data, or None if there are none."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not values:
        return None

    def redact(data: Mapping[str, Any]) -> Mapping[str, Any]:
        scrubbed = _scrub(data, values)
        assert isinstance(scrubbed, Mapping)
        return scrubbed

    return redact
