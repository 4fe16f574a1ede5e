"""The ``isolation:`` section's checks and its endpoint mapping (docs/isolated.md).

``drdrill run --isolated`` must never touch production. What can be checked before anything
runs is checked here, every problem located at file:line: a step that runs isolated acts
only on the clone's roles (a production role must be mapped under ``isolation.roles`` or the
step marked ``isolated: false``), the fault is never injected isolated, the clone's roles
resolve to hosts of their own, and every endpoint the probe and canary use is mapped to the
clone's under ``isolation.endpoints`` — an unmapped one would probe and write to production.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drdrill.executors.inventory import Inventory
from drdrill.runbook.endpoints import TEMPLATE, Bindings, endpoint_sites, option_strings
from drdrill.runbook.source import PathItem, Problem, Source, show
from drdrill.runbook.walk import raw_steps

LITERAL_ENDPOINT_KEYS = ("dsn", "url", "host")  # options naming where a probe connects


def _section(data: Any) -> dict[str, Any] | None:
    iso = data.get("isolation") if isinstance(data, dict) else None
    return iso if isinstance(iso, dict) else None


def _mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _isolation_steps(iso: dict[str, Any]) -> Iterator[tuple[list[PathItem], dict[str, Any]]]:
    for key in ("steps", "teardown"):
        items = iso.get(key)
        for i, step in enumerate(items if isinstance(items, list) else ()):
            if isinstance(step, dict):
                yield ["isolation", key, i], step


def isolation_problems(source: Source, inventory: Inventory | None,
                       playbook_dir: Path) -> list[Problem]:
    """Every way the isolated path of ``source`` could reach production, located."""
    iso = _section(source.data)
    if iso is None:
        return []
    roles = _mapping(iso.get("roles"))
    out = playbook_problems(source, playbook_dir)
    out.extend(_role_map_problems(source, roles))
    out.extend(_step_problems(source, iso, roles))
    out.extend(_endpoint_problems(source, _mapping(iso.get("endpoints"))))
    if inventory is not None:
        out.extend(_host_problems(source, roles, inventory))
    return out


def _role_map_problems(source: Source, roles: dict[str, str]) -> Iterator[Problem]:
    for prod, clone in roles.items():
        if clone in roles or clone == prod:
            yield source.problem(["isolation", "roles", prod], (
                f"the clone's role {show(clone)} is also mapped as a production role — "
                "map each production role to a role of the clone's own (e.g. standby: clone)"))


def _step_problems(source: Source, iso: dict[str, Any],
                   roles: dict[str, str]) -> Iterator[Problem]:
    clone_roles = set(roles.values())
    names = {str(s.get("name")) for _, s in raw_steps(source.data)}
    for path, step in raw_steps(source.data):
        if step.get("isolated") is False:
            continue
        if step.get("disaster") is True:
            yield source.problem([*path, "disaster"], (
                "in --isolated mode this step would inject the fault on production — mark "
                "it isolated: false (an isolated run's T0 is the clone being ready)"))
        role = step.get("role")
        if isinstance(role, str) and role not in roles and role not in clone_roles:
            yield source.problem([*path, "role"], (
                f"in --isolated mode this step would act on role {show(role)}, which is "
                f"production — map it to the clone under isolation.roles ({role}: "
                "<the clone's role>), or mark the step isolated: false"))
    for path, step in _isolation_steps(iso):
        role = step.get("role")
        if isinstance(role, str) and role not in clone_roles:
            yield source.problem([*path, "role"], (
                f"isolation steps act on the clone only: role {show(role)} is not one of "
                "the clone's roles (the values of isolation.roles) — run it on the clone's "
                "host and let the playbook read production from there"))
        if step.get("disaster") is True or step.get("isolated") is False:
            key = "disaster" if step.get("disaster") is True else "isolated"
            yield source.problem([*path, key], (
                f"{key}: does not apply to isolation steps — remove it"))
        name = step.get("name")
        if isinstance(name, str) and name in names:
            yield source.problem([*path, "name"], (
                f"step name {show(name)} is already used — step names must be unique"))
        if isinstance(name, str):
            names.add(name)


def _skipped_paths(data: Any) -> list[list[PathItem]]:
    return [path for path, step in raw_steps(data) if step.get("isolated") is False]


def _endpoint_problems(source: Source, endpoints: dict[str, str]) -> Iterator[Problem]:
    """Probe, canary and named-probe options the isolated run uses: every ``{{ name }}``
    mapped to the clone's, and no literal address (it would be production's)."""
    skipped = _skipped_paths(source.data)
    for site, spec in endpoint_sites(source.data):
        if any(site[:len(p)] == p for p in skipped):
            continue
        for path, text in option_strings(spec, site):
            names = [m.group(1) for m in TEMPLATE.finditer(text)]
            for name in names:
                if name not in endpoints:
                    yield source.problem(path, (
                        f"in --isolated mode {{{{ {name} }}}} would still reach production — "
                        f"map it under isolation.endpoints ({name}: <the variable holding "
                        "the clone's value>)"))
            if not names and path[-1] in LITERAL_ENDPOINT_KEYS:
                yield source.problem(path, (
                    f"in --isolated mode this literal {path[-1]} would be probed as is, on "
                    "production — name it {{ var }} from the inventory and map var under "
                    "isolation.endpoints"))


def _host_problems(source: Source, roles: dict[str, str],
                   inventory: Inventory) -> Iterator[Problem]:
    """The clone must be an inventory host of its own (another port or host): a clone role
    resolving to a production host would run the recovery on production."""
    declared = _mapping(source.data.get("roles"))

    def hosts(role: str) -> set[str]:
        return set(inventory.resolve(declared.get(role, role)))

    clone_roles = set(roles.values())
    production = set(roles) | {r for r in declared if r not in clone_roles}
    for prod in sorted(production):
        for clone in sorted(clone_roles):
            shared = hosts(prod) & hosts(clone)
            if shared:
                where: list[PathItem] = ["isolation", "roles"]
                if prod in roles:
                    where.append(prod)
                yield source.problem(where, (
                    f"the clone's role {show(clone)} resolves to {', '.join(sorted(shared))}, "
                    f"a host of production role {show(prod)} — give the clone its own "
                    f"inventory host (another port or host) in {inventory.path}"))


def binding_problems(source: Source, bindings: Bindings) -> list[Problem]:
    """Each ``isolation.endpoints`` target the inventory and -e do not define."""
    iso = _section(source.data)
    if iso is None:
        return []
    return [source.problem(["isolation", "endpoints", name], (
        f"{show(target)} is not defined — define {target} in the inventory's all vars "
        f"({bindings.inventory}) or pass -e {target}=..."))
        for name, target in _mapping(iso.get("endpoints")).items()
        if target not in bindings.values and target not in bindings.pending]


def isolated_bindings(data: Any, bindings: Bindings) -> Bindings:
    """``bindings`` as an isolated run resolves them: each mapped endpoint name takes the
    value (or the pending reason) of the clone's variable."""
    iso = _section(data)
    if iso is None:
        return bindings
    values: dict[str, str] = dict(bindings.values)
    pending: dict[str, str] = dict(bindings.pending)
    for name, target in _mapping(iso.get("endpoints")).items():
        values.pop(name, None)
        pending.pop(name, None)
        if target in bindings.values:
            values[name] = bindings.values[target]
        else:
            pending[name] = (f"mapped by isolation.endpoints to {target}: "
                             + bindings.pending.get(target, "not defined"))
    return Bindings(_frozen(values), _frozen(pending), bindings.inventory, bindings.strict)


def _frozen(mapping: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(mapping)


def playbooks_of(iso: dict[str, Any]) -> list[tuple[list[PathItem], str]]:
    """(path, playbook) of the isolation steps, for the playbook-file check."""
    return [([*path, "playbook"], step["playbook"]) for path, step in _isolation_steps(iso)
            if isinstance(step.get("playbook"), str)]


def playbook_problems(source: Source, playbook_dir: Path) -> list[Problem]:
    from drdrill.runbook.semantic import playbook_problem

    iso = _section(source.data)
    out: list[Problem] = []
    for path, playbook in playbooks_of(iso) if iso is not None else []:
        problem = playbook_problem(playbook, playbook_dir)
        if problem:
            out.append(source.problem(path, f"{show(playbook)} {problem}"))
    return out
