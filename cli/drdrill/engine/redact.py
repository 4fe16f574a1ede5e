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


def secret_strings(secret_vars: Mapping[str, Any]) -> list[str]:
    """The strings to mask, longest first (so a secret containing another is masked whole)."""
    return sorted({str(v) for v in secret_vars.values() if str(v)}, key=len, reverse=True)


def make_redactor(secret_vars: Mapping[str, Any]) -> Redactor | None:
    """A function masking every secret value inside event data, or None if there are none."""
    values = secret_strings(secret_vars)
    if not values:
        return None

    def redact(data: Mapping[str, Any]) -> Mapping[str, Any]:
        scrubbed = _scrub(data, values)
        assert isinstance(scrubbed, Mapping)
        return scrubbed

    return redact
