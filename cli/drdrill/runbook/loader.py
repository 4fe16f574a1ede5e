"""Load a runbook: YAML with line numbers → schema → semantic checks → frozen model.

Every problem is collected and reported at once as ``file:line:col: path: message — what
to do``; nothing but :class:`~drdrill.errors.ValidationFailed` ever leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drdrill.errors import ValidationFailed
from drdrill.executors.inventory import Inventory
from drdrill.runbook.build import build_runbook
from drdrill.runbook.endpoints import make_bindings, template_problems
from drdrill.runbook.isolation import binding_problems, isolated_bindings
from drdrill.runbook.model import Runbook
from drdrill.runbook.schema import schema_problems
from drdrill.runbook.semantic import semantic_problems
from drdrill.runbook.source import Problem, SourceError, read_source


def default_playbook_dir(runbook_path: Path) -> Path:
    """``X/playbooks`` for a runbook at ``X/drills/a.yml`` if that directory exists, else
    ``./playbooks`` (absolute)."""
    beside = runbook_path.absolute().parent.parent / "playbooks"
    return beside if beside.is_dir() else Path.cwd() / "playbooks"


def load_runbook(path: Path, inventory: Inventory | None = None,
                 playbook_dir: Path | None = None, *,
                 extra_vars: Mapping[str, Any] | None = None,
                 strict: bool = False, isolated: bool = False) -> Runbook:
    """The runbook at ``path`` as a :class:`Runbook`; raise ValidationFailed listing every
    problem. With ``inventory``, every role a step uses must resolve to at least one host,
    and ``{{ name }}`` in probe/canary options is resolved from its all vars, the runbook's
    vars and ``extra_vars`` (-e); ``strict`` (about to use the endpoints: run, preflight)
    also refuses names with no usable value now (unrendered, secret not supplied);
    ``isolated`` (run --isolated) resolves the names ``isolation.endpoints`` maps to the
    clone's values instead."""
    path = Path(path)
    playbooks = (playbook_dir if playbook_dir is not None
                 else default_playbook_dir(path)).absolute()
    file = str(path)
    try:
        source = read_source(path)
    except SourceError as exc:
        raise ValidationFailed([exc.problem.render(file)]) from None
    problems: list[Problem] = list(source.problems)
    taken = {(p.line, p.col) for p in problems}  # an odd value needs no second message
    problems.extend(p for p in schema_problems(source) if (p.line, p.col) not in taken)
    problems.extend(semantic_problems(source, inventory, playbooks))
    bindings = (make_bindings(source.data, inventory, extra_vars, strict)
                if inventory is not None else None)
    if bindings is not None and isolated:
        # only an isolated run needs the clone's endpoints: an inventory without a clone
        # (real servers, the SSH hosts) still runs the normal drill
        problems.extend(binding_problems(source, bindings))
        bindings = isolated_bindings(source.data, bindings)
    if bindings is not None:
        problems.extend(template_problems(source, bindings))
    if not problems:
        runbook, problems = build_runbook(source, playbooks, bindings)
        if not problems:
            return runbook
    problems.sort(key=lambda p: (p.line, p.col))
    raise ValidationFailed([p.render(file) for p in problems])


def validate_runbook(path: Path, inventory: Inventory | None = None,
                     playbook_dir: Path | None = None, *,
                     extra_vars: Mapping[str, Any] | None = None,
                     isolated: bool = False) -> list[str]:
    """Every problem of the runbook at ``path`` as ``file:line:col: message`` (empty = valid)."""
    try:
        load_runbook(path, inventory=inventory, playbook_dir=playbook_dir,
                     extra_vars=extra_vars, isolated=isolated)
    except ValidationFailed as exc:
        return list(exc.problems)
    return []
