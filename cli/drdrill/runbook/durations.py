"""Durations as runbooks write them: "90s", "5m", "1h30m", "250ms", or a bare number of seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|h|m|s))+$"


def parse_duration(value: object) -> float:
    """Return seconds for ``value``; raise ValueError with the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"{value!r} is not a duration: write e.g. 90s, 5m, 1h30m or 250ms"
        )
    return total


def format_duration(seconds: float) -> str:
    """Short human form used in views and reports (3 decimals under a minute).

    Rounded to the millisecond first, so 119.9996 s is "2m00.000s", never "1m60.000s".
    """
    seconds = round(seconds, 3)
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m{rest:06.3f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h{int(minutes):02d}m{rest:06.3f}s"
