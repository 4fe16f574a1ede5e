"""Checks the schema cannot express: references between parts of the runbook, files on disk,
roles against an inventory. Written to run on data the schema may have rejected too, so one
pass reports every problem; each check looks only at values of the shape it needs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from drdrill.executors.inventory import Inventory
from drdrill.notify.checks import notify_problems
from drdrill.runbook.commands import command_problems
from drdrill.runbook.groups import group_problems
from drdrill.runbook.isolation import isolation_problems
from drdrill.runbook.source import PathItem, Problem, Source, json_path, show
from drdrill.runbook.walk import raw_steps


@dataclass
class _Seen:
    """First occurrence (path, line) of each step name / checkpoint."""

    names: dict[str, tuple[list[PathItem], int]] = field(default_factory=dict)
    checkpoints: dict[str, tuple[list[PathItem], int]] = field(default_factory=dict)
    disaster: tuple[list[PathItem], int] | None = None


def semantic_problems(source: Source, inventory: Inventory | None,
                      playbook_dir: Path) -> list[Problem]:
    data = source.data
    out: list[Problem] = []
    probes = data.get("probes") if isinstance(data.get("probes"), dict) else {}
    roles = data.get("roles") if isinstance(data.get("roles"), dict) else {}
    for name, spec in probes.items():
        out.extend(_probe_regex(source, ["probes", name], spec))
    service = data.get("service")
    if isinstance(service, dict):
        out.extend(_probe_regex(source, ["service", "probe"], service.get("probe")))
    seen = _Seen()
    checker = _StepChecker(source, inventory, playbook_dir, probes, roles, seen)
    for path, step in raw_steps(data):
        out.extend(checker.check(path, step))
    out.extend(group_problems(source, seen.names))
    out.extend(notify_problems(source, raw_steps(data)))
    out.extend(command_problems(source))
    out.extend(isolation_problems(source, inventory, playbook_dir))
    return out


@dataclass
class _StepChecker:
    source: Source
    inventory: Inventory | None
    playbook_dir: Path
    probes: dict[str, Any]
    roles: dict[str, Any]
    seen: _Seen

    def check(self, path: list[PathItem], step: dict[str, Any]) -> Iterator[Problem]:
        src = self.source
        line = src.locate(path)[0]
        in_rollback = path[0] == "rollback"
        name = step.get("name")
        if isinstance(name, str):
            first = self.seen.names.setdefault(name, (path, line))
            if first[0] is not path:
                yield src.problem([*path, "name"], (
                    f"step name {show(name)} is already used by {json_path(first[0])} "
                    f"(line {first[1]}) — step names must be unique"))
        checkpoint = step.get("checkpoint")
        if isinstance(checkpoint, str):
            first = self.seen.checkpoints.setdefault(checkpoint, (path, line))
            if first[0] is not path:
                yield src.problem([*path, "checkpoint"], (
                    f"checkpoint {show(checkpoint)} is already stamped by "
                    f"{json_path(first[0])} (line {first[1]}) — give it another name"))
        if step.get("disaster") is True:
            if in_rollback:
                yield src.problem([*path, "disaster"], (
                    "a rollback step cannot be the disaster — mark the fault-injection step "
                    "under steps: instead"))
            elif self.seen.disaster is not None:
                other, other_line = self.seen.disaster
                yield src.problem([*path, "disaster"], (
                    f"a second disaster step ({json_path(other)}, line {other_line} is the "
                    "first) — T0 is one instant; keep disaster: true on one step"))
            else:
                self.seen.disaster = (path, line)
        for kind in ("probe", "wait_for"):
            yield from self._probe_ref(path, kind, step.get(kind))
        role = step.get("role")
        if isinstance(role, str) and role:
            problem = self._role(role)
            if problem:
                yield src.problem([*path, "role"], problem)
        playbook = step.get("playbook")
        if isinstance(playbook, str) and playbook:
            problem = playbook_problem(playbook, self.playbook_dir)
            if problem:
                yield src.problem([*path, "playbook"], f"{show(playbook)} {problem}")

    def _probe_ref(self, path: list[PathItem], kind: str, ref: Any) -> Iterator[Problem]:
        if isinstance(ref, dict):
            yield from _probe_regex(self.source, [*path, kind], ref)
        elif isinstance(ref, str) and ref not in self.probes:
            close = difflib.get_close_matches(ref, [str(p) for p in self.probes], n=1)
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif self.probes:
                hint = "defined: " + ", ".join(str(p) for p in self.probes)
            else:
                hint = "define it under probes: or write the probe inline"
            yield self.source.problem([*path, kind],
                                      f"probe {show(ref)} is not defined under probes: — {hint}")

    def _role(self, role: str) -> str | None:
        pattern = self.roles.get(role)
        if self.inventory is None:
            if role in self.roles:
                return None
            return (f"role {show(role)} is not defined under roles: — add it there "
                    "(role: inventory pattern), or validate with -i INVENTORY to use it as "
                    "an inventory pattern directly")
        used = pattern if isinstance(pattern, str) else role
        if self.inventory.resolve(used):
            return None
        via = f" (pattern {show(used)})" if used != role else ""
        return (f"role {show(role)}{via} matches no host in inventory "
                f"{self.inventory.path} — add that group or host to the inventory, or map "
                "the role to one under roles:")


def playbook_problem(playbook: str, playbook_dir: Path) -> str | None:
    """Why ``playbook`` is not a usable file inside ``playbook_dir`` (None if it is)."""
    if "\x00" in playbook:
        return "contains a NUL character — fix the file name"
    if (playbook.startswith(("/", "\\")) or PurePosixPath(playbook).is_absolute()
            or PureWindowsPath(playbook).drive):
        return ("is an absolute path — name a file relative to the playbooks directory "
                f"({playbook_dir})")
    if ".." in PurePosixPath(playbook.replace("\\", "/")).parts:
        return ("leaves the playbooks directory (..) — playbooks must live under "
                f"{playbook_dir}")
    try:
        base = playbook_dir.resolve()
        target = (base / playbook).resolve()
        if not target.is_relative_to(base):
            return (f"resolves outside {base} (through a symlink) — put the playbook itself "
                    "under the playbooks directory")
        if not target.is_file():
            return f"not found in {base} — create it or fix the name"
    except (OSError, ValueError, RuntimeError) as exc:
        return f"cannot be checked ({exc}) — fix the file name"
    return None


def _probe_regex(source: Source, path: list[PathItem], spec: Any) -> Iterator[Problem]:
    if not isinstance(spec, dict):
        return
    for key in ("expect_output", "expect_body"):
        yield from _one_regex(source, [*path, key], spec.get(key))


def _one_regex(source: Source, path: list[PathItem], pattern: Any) -> Iterator[Problem]:
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            yield source.problem(path,
                                 f"{show(pattern)} is not a valid regular expression "
                                 f"({exc}) — fix it, or escape special characters with \\")
