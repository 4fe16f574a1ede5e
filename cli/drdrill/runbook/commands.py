"""``command:`` steps: an argv run on a role's hosts (or on the controller), never a shell.

The shortest recovery actions (a promote, a kill) need no playbook: Ansible's start-up costs
~2 s per step on the RTO path, a process start costs milliseconds. Each argv element may
name variables as ``{{ name }}`` — plain text substitution, as for endpoints
(runbook/endpoints.py), never Jinja and never a shell, so a value with ``;`` or spaces stays
one argument. An element that is exactly ``{{ name }}`` of a *list* variable is spliced in
as that many arguments (``{{ pg_run_as }}`` = ``[runuser, -u, postgres, --]`` on the lab as
root, ``[]`` elsewhere), so one runbook runs the same command as the right OS account on
the lab and on real servers by inventory swap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from drdrill.runbook.endpoints import TEMPLATE, scalar_text
from drdrill.runbook.source import Problem, Source, show
from drdrill.runbook.walk import raw_steps

_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class UnboundName(ValueError):
    """An argv element names a variable that has no value for this host."""


def command_problems(source: Source) -> list[Problem]:
    """Where a command step cannot run: no target (role or local), both, or a ``{{ }}``
    that is not a plain variable name."""
    out: list[Problem] = []
    for path, step in raw_steps(source.data):
        argv = step.get("command")
        if argv is None:
            continue
        local = step.get("local") is True
        if not local and "role" not in step:
            out.append(source.problem([*path, "command"], (
                "a command step runs on role: hosts or locally — add role: ROLE, or "
                "local: true to run it on this machine")))
        elif local and "role" in step:
            out.append(source.problem([*path, "local"], (
                "local: true runs on this machine, role: on that role's hosts — keep one")))
        for i, item in enumerate(argv if isinstance(argv, list) else ()):
            if not isinstance(item, str):
                continue
            for match in _BRACES.finditer(item):
                if TEMPLATE.fullmatch(match.group(0)) is None:
                    out.append(source.problem([*path, "command", i], (
                        f"{show(match.group(0)[:60])} is not a variable name — only "
                        "{{ name }} is substituted in a command (letters, digits, _), never "
                        "an expression; compute the value in the inventory")))
    return out


def render_argv(argv: Sequence[str], values: Mapping[str, Any]) -> list[str]:
    """``argv`` with each ``{{ name }}`` replaced from ``values``; a whole-element list
    variable spliced in. Raises UnboundName naming the first missing/unusable variable."""
    out: list[str] = []
    for item in argv:
        whole = TEMPLATE.fullmatch(item.strip())
        if whole is not None and isinstance(values.get(whole.group(1)), list | tuple):
            out.extend(str(v) for v in values[whole.group(1)])
            continue
        out.append(TEMPLATE.sub(lambda m: _value(m.group(1), values), item))
    return out


def _value(name: str, values: Mapping[str, Any]) -> str:
    if name not in values:
        raise UnboundName(f"{{{{ {name} }}}} is not defined for this host — define {name} in "
                          "the inventory, the runbook's vars: or pass -e")
    text = scalar_text(values[name])
    if text is None:
        raise UnboundName(f"{{{{ {name} }}}} is a mapping or a list inside a longer argument "
                          "— only a whole argument may be a list")
    if "{{" in text:
        raise UnboundName(f"{{{{ {name} }}}} is itself an unrendered template "
                          f"({text[:60]!r}) — give the final value (is the lab up?)")
    return text
