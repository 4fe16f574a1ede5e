"""The "isolated" banner of every report of a ``run --isolated`` (docs/isolated.md): said
first and prominently, so nobody takes a drill on a clone for a failover of production."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def isolated_lines(record: Mapping[str, Any]) -> list[str]:
    """The banner and what was cloned from where and when (empty: not an isolated run)."""
    iso = record.get("isolated")
    if not isinstance(iso, Mapping):
        return []
    lag = iso.get("lag_bytes")
    lag_s = iso.get("lag_s")
    lines = [
        str(iso.get("banner") or "ISOLATED TEST — production was not failed over"),
        f"Recovered a clone of {iso.get('cloned_from') or 'n/a'} made at "
        f"{iso.get('cloned_at') or 'n/a'} (clone endpoint {iso.get('clone_endpoint') or 'n/a'}"
        f", copied in {_secs(iso.get('clone_s'))}, {_size(iso.get('clone_bytes'))}).",
        "The clone's lag at clone time (its RPO, from the databases' positions): "
        + ("not measured" + (f" ({iso.get('not_measured_reason')})"
                             if iso.get("not_measured_reason") else "")
           if lag is None else f"{lag} bytes, {_secs(lag_s)}"
           + (" (an upper bound)" if iso.get("lag_s_kind") == "upper_bound" else "")) + ".",
        f"Clone teardown: {iso.get('teardown') or 'n/a'}.",
    ]
    skipped = iso.get("skipped_steps") or []
    if skipped:
        lines.append("Not run in isolated mode (isolated: false): "
                     + ", ".join(str(s) for s in skipped) + ".")
    return lines


def _secs(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}s"


def _size(value: Any) -> str:
    return "size n/a" if value is None else f"{float(value) / 1e6:.1f} MB"
