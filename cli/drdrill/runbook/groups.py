"""Parallel groups in runbook data: their names and the checks the schema cannot express.

A group's members run at once on threads of one orchestrator, so anything that needs the
one terminal to itself cannot be a member twice over: at most one manual step (a person
answers one prompt at a time), and no gates (a go/no-go would hold one member while its
siblings already act). Nested groups are refused by the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from drdrill.runbook.source import PathItem, Problem, Source, json_path, show
from drdrill.runbook.walk import is_group, step_lists

Seen = dict[str, tuple[list[PathItem], int]]


def default_group_name(prefix: list[PathItem], ordinal: int) -> str:
    """``parallel-N`` (``rollback-parallel-N`` under rollback:), N counting groups."""
    return f"{'rollback-' if prefix[0] == 'rollback' else ''}parallel-{ordinal}"


def group_names(items: list[Any], prefix: list[PathItem]) -> dict[int, str]:
    """Position in the list → name, for every group of one step list."""
    names: dict[int, str] = {}
    for i, item in enumerate(items):
        if is_group(item):
            given = item.get("name")
            names[i] = given if isinstance(given, str) else default_group_name(
                prefix, len(names) + 1)
    return names


def group_problems(source: Source, step_names: Seen) -> list[Problem]:
    """Every problem of every group in ``steps:`` and ``rollback.steps:``; ``step_names``
    holds the first place of each step name (a group name may not reuse one)."""
    out: list[Problem] = []
    seen: Seen = {}
    for prefix, items in step_lists(source.data):
        if not isinstance(items, list):
            continue
        for i, name in group_names(items, prefix).items():
            path = [*prefix, i]
            out.extend(_name_problem(source, path, items[i], name, step_names, seen))
            members = items[i].get("parallel")
            if isinstance(members, list):
                out.extend(_member_problems(source, path, members))
    return out


def _name_problem(source: Source, path: list[PathItem], group: dict[str, Any], name: str,
                  step_names: Seen, seen: Seen) -> Iterator[Problem]:
    line = source.locate(path)[0]
    first = step_names.get(name) or seen.get(name)
    seen.setdefault(name, (path, line))
    if first is not None and "name" in group:
        yield source.problem([*path, "name"], (
            f"group name {show(name)} is already used by {json_path(first[0])} "
            f"(line {first[1]}) — step and group names must be unique"))


def _member_problems(source: Source, path: list[PathItem],
                     members: list[Any]) -> Iterator[Problem]:
    manual: int | None = None
    for j, member in enumerate(members):
        if not isinstance(member, dict):
            continue
        where = [*path, "parallel", j]
        if member.get("gate") is True:
            yield source.problem([*where, "gate"], (
                "a member of a parallel group cannot have a gate: its siblings would already "
                "be running while it waits for go/no-go — put the gate on a step before "
                "the group"))
        if "manual" not in member:
            continue
        if manual is not None:
            first = [*path, "parallel", manual]
            yield source.problem([*where, "manual"], (
                f"a second manual step in one parallel group ({json_path(first)}, "
                f"line {source.locate(first)[0]} is the first) — a person answers one "
                "prompt at a time; move one of them out of the group"))
        else:
            manual = j
