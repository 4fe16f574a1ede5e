"""Duration parsing and the human form used in views and reports."""

from __future__ import annotations

import pytest

from drdrill.runbook.durations import format_duration


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0.000s"),
    (6.6004, "6.600s"),
    (59.9996, "1m00.000s"),
    (119.9996, "2m00.000s"),
    (61.5, "1m01.500s"),
    (3599.9999, "1h00m00.000s"),
    (3725.25, "1h02m05.250s"),
])
def test_format_duration_never_shows_sixty_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
