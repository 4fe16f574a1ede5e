"""Walking the raw step lists of runbook data, parallel groups included.

``steps:`` and ``rollback.steps:`` hold steps and ``{parallel: [step, ...], name: ...}``
groups. Every check that looks at steps (semantic, endpoints, notify) walks them through
:func:`raw_steps`, so a member is checked exactly like a step at the top level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from drdrill.runbook.source import PathItem


@dataclass(frozen=True)
class RawStep:
    """One step mapping where it sits; ``group`` is the path of its parallel group."""

    path: list[PathItem]
    data: dict[str, Any]
    group: list[PathItem] | None = None


def step_lists(data: Any) -> list[tuple[list[PathItem], Any]]:
    """(path, value) of ``steps`` and, when present, ``rollback.steps``."""
    if not isinstance(data, dict):
        return []
    lists: list[tuple[list[PathItem], Any]] = [(["steps"], data.get("steps"))]
    rollback = data.get("rollback")
    if isinstance(rollback, dict):
        lists.append((["rollback", "steps"], rollback.get("steps")))
    return lists


def is_group(item: Any) -> bool:
    return isinstance(item, dict) and "parallel" in item


def walk_steps(data: Any) -> Iterator[RawStep]:
    """Every step mapping of both lists in order, members of a group in their place."""
    for prefix, items in step_lists(data):
        for i, item in enumerate(items if isinstance(items, list) else ()):
            if is_group(item):
                members = item.get("parallel")
                for j, member in enumerate(members if isinstance(members, list) else ()):
                    if isinstance(member, dict):
                        yield RawStep([*prefix, i, "parallel", j], member, [*prefix, i])
            elif isinstance(item, dict):
                yield RawStep([*prefix, i], item)


def raw_steps(data: Any) -> Iterator[tuple[list[PathItem], dict[str, Any]]]:
    """(path, step mapping) of every step, as the per-step checks want them."""
    for raw in walk_steps(data):
        yield raw.path, raw.data
