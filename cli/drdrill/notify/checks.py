"""Runbook semantic checks for notifications (called by runbook.semantic): message
templates, target names and the secrets a target's bearer token comes from. Like the other
semantic checks they look only at values of the shape they need."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from drdrill.notify.message import template_problems
from drdrill.runbook.source import PathItem, Problem, Source, show


def _target_names(source: Source, targets: list[Any]) -> Iterator[Problem | str]:
    seen: set[str] = set()
    secrets = source.data.get("secrets")
    secret_names = {s for s in secrets if isinstance(s, str)} if isinstance(secrets, list) \
        else set()
    for i, target in enumerate(targets):
        if not isinstance(target, dict):
            continue
        name = target.get("name")
        name = name if isinstance(name, str) else f"target-{i + 1}"
        if name in seen:
            yield source.problem(["notify", i, "name"], (
                f"target name {show(name)} is already used — give each target its own name"))
        seen.add(name)
        yield name
        secret = target.get("headers_secret")
        if isinstance(secret, str) and secret not in secret_names:
            yield source.problem(["notify", i, "headers_secret"], (
                f"{show(secret)} is not listed under secrets: — add it there so its value "
                "is never written anywhere"))


def notify_problems(source: Source,
                    steps: Iterator[tuple[list[PathItem], dict[str, Any]]]) -> list[Problem]:
    """Problems of the top-level ``notify:`` targets and of every notify step."""
    targets = source.data.get("notify")
    names: set[str] = set()
    out: list[Problem] = []
    for item in _target_names(source, targets if isinstance(targets, list) else []):
        if isinstance(item, str):
            names.add(item)
        else:
            out.append(item)
    for path, step in steps:
        spec = step.get("notify")
        if not isinstance(spec, dict):
            continue
        message = spec.get("message")
        if isinstance(message, str):
            out.extend(source.problem([*path, "notify", "message"], p)
                       for p in template_problems(message))
        wanted = spec.get("targets")
        for j, ref in enumerate(wanted if isinstance(wanted, list) else []):
            if isinstance(ref, str) and ref not in names:
                defined = ", ".join(sorted(names)) if names else "none are defined"
                out.append(source.problem([*path, "notify", "targets", j], (
                    f"target {show(ref)} is not defined under notify: ({defined}) — "
                    "name it there or fix the reference")))
    return out
