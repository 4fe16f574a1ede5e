"""Read a standard Ansible inventory with Ansible's own parser (never re-implemented;
validate may replay its stored result, executors/inventory_cache.py).

Runbooks name roles; a role maps to an inventory pattern (group, host, ``a:b``...). This
module turns patterns into host names and exposes each host's variables as plain data.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drdrill.errors import BadInput
from drdrill.executors import inventory_cache


@dataclass(frozen=True)
class Inventory:
    path: Path
    sha256: str
    hosts: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    host_vars: Mapping[str, Mapping[str, Any]]
    # the ``all`` group's variables, rendered: what ``{{ name }}`` in a runbook's probe,
    # canary and named-probe options resolves from (runbook/endpoints.py)
    all_vars: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # ``all`` variables that could not be rendered now, with Ansible's reason (e.g. the lab's
    # lab.env.json does not exist yet)
    unrendered: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def resolve(self, pattern: str) -> list[str]:
        """Hosts matched by ``pattern``: a group, a host, or ``a:b`` unions. Empty if none."""
        found: list[str] = []
        for part in pattern.split(":"):
            part = part.strip()
            members = self.groups.get(part) or ((part,) if part in self.host_vars else ())
            found.extend(h for h in members if h not in found)
        return found

    def vars_of(self, host: str) -> Mapping[str, Any]:
        return self.host_vars.get(host, MappingProxyType({}))

    @property
    def environment(self) -> str | None:
        """``drdrill_environment`` set on all hosts (e.g. ``production``), if any host sets it."""
        values = {str(v["drdrill_environment"]) for v in self.host_vars.values()
                  if "drdrill_environment" in v}
        return "production" if "production" in values else (values.pop() if values else None)


def load_inventory(path: Path, *, cache: bool = False) -> Inventory:
    """Parse ``path`` with Ansible's InventoryManager; raise BadInput if it is unusable.
    With ``cache`` (validate), Ansible's result for an unchanged plain file is replayed from
    inventory_cache instead (host variables are still rendered by Ansible, on first use)."""
    if not path.is_file():
        raise BadInput(f"{path}: inventory not found", hint="pass -i with an existing file")
    raw = path.read_bytes()
    slot = inventory_cache.slot_for(path, raw) if cache else None
    parsed = slot.load() if slot is not None else None
    if parsed is not None:
        host_vars = _HostVars(parsed.hosts, lambda: _render_hosts(*_parse(path)))
    else:
        loader, manager = _parse(path)
        reads = inventory_cache.FileReads()
        reads.watch(loader)
        parsed = _parsed(path, loader, manager)
        if slot is not None:
            slot.store(parsed, reads)
        host_vars = _HostVars(parsed.hosts, functools.partial(_render_hosts, loader, manager))
    return Inventory(path=path, sha256=hashlib.sha256(raw).hexdigest(), hosts=parsed.hosts,
                     groups=MappingProxyType(dict(parsed.groups)), host_vars=host_vars,
                     all_vars=MappingProxyType(dict(parsed.all_vars)),
                     unrendered=MappingProxyType(dict(parsed.unrendered)))


def _parse(path: Path) -> tuple[Any, Any]:
    """Ansible's loader and InventoryManager for ``path``."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    try:
        manager = InventoryManager(loader=loader, sources=[str(path)])
    except Exception as exc:  # ansible raises many types for a bad source
        raise BadInput(f"{path}: cannot parse inventory: {exc}") from exc
    return loader, manager


def _parsed(path: Path, loader: Any, manager: Any) -> inventory_cache.Parsed:
    hosts = tuple(h.name for h in manager.get_hosts())
    if not hosts:
        raise BadInput(f"{path}: inventory has no hosts",
                       hint="check the file is an Ansible inventory (YAML or INI)")
    groups = {name: tuple(h.name for h in group.get_hosts())
              for name, group in manager.groups.items()}
    all_vars, unrendered = _all_vars(loader, manager)
    return inventory_cache.Parsed(hosts=hosts, groups=groups, all_vars=all_vars,
                                  unrendered=unrendered)


class _HostVars(Mapping[str, Mapping[str, Any]]):
    """Every host's variables, rendered by Ansible on first use — all hosts at once, so
    they form one view — then kept. ``validate`` and ``plan`` only need the host names, and
    rendering costs Ansible's VariableManager import plus lookups and Jinja compiles per
    host (~0.5 s on the lab inventory): start-up time that is downtime in an outage."""

    def __init__(self, names: tuple[str, ...],
                 render_all: Callable[[], dict[str, Mapping[str, Any]]]) -> None:
        self._names = frozenset(names)
        self._order = names
        self._render_all: Callable[[], dict[str, Mapping[str, Any]]] | None = render_all
        self._values: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.Lock()  # preflight reads hosts from several threads

    def _rendered(self) -> dict[str, Mapping[str, Any]]:
        with self._lock:
            if self._render_all is not None:
                self._values = self._render_all()
                self._render_all = None  # let Ansible's loader and manager go
            return self._values

    def __getitem__(self, host: str) -> Mapping[str, Any]:
        if host not in self._names:
            raise KeyError(host)
        return self._rendered()[host]

    def __contains__(self, host: object) -> bool:
        return host in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


@functools.cache
def _init_plugins() -> None:
    """Ansible's plugin loader may be initialised once per process."""
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()


def _render_hosts(loader: Any, manager: Any) -> dict[str, Mapping[str, Any]]:
    render = _renderer(loader, manager)
    return {h.name: MappingProxyType(_plain(render(h))) for h in manager.get_hosts()}


def _renderer(loader: Any, manager: Any) -> Any:
    """Host variables as Ansible sees them (group vars, group_vars/ and host_vars/ dirs,
    host vars), each templated (lab inventories compute paths with lookups). A variable
    that cannot be rendered now (e.g. the lab is not up yet) keeps its raw text."""
    import sys

    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    _init_plugins()
    manager_vars = VariableManager(loader=loader, inventory=manager)

    def render(host: Any) -> dict[str, Any]:
        raw = dict(manager_vars.get_vars(host=host, include_hostvars=False))
        raw.setdefault("ansible_playbook_python", sys.executable)
        templar = Templar(loader=loader, variables=raw)
        rendered: dict[str, Any] = {}
        for name, value in raw.items():
            if name in _SKIP_VARS:
                continue
            try:
                rendered[name] = templar.template(value)
            except Exception:  # undefined/lookup errors: keep what the file says
                rendered[name] = value
        return rendered

    return render


def _all_vars(loader: Any, manager: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``all`` group's variables (the file's ``all: vars:`` and group_vars/all), each
    rendered with only the other ``all`` variables in scope — no host is involved, so a
    value naming host facts (``inventory_hostname``) is reported as unrendered."""
    import sys

    from ansible.template import Templar

    _init_plugins()
    group = manager.groups.get("all")
    raw = dict(group.get_vars()) if group is not None else {}
    scope = {"ansible_playbook_python": sys.executable, **raw}
    templar = Templar(loader=loader, variables=scope)
    rendered: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, value in raw.items():
        try:
            rendered[str(name)] = _plain(templar.template(value))
        except Exception as exc:  # undefined/lookup errors: say why, keep the raw text
            rendered[str(name)] = _plain(value)
            failed[str(name)] = _first_line(exc)
    return rendered, failed


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text.replace(" Use -vvvvv to see paths searched.", "")


_SKIP_VARS = frozenset({"hostvars", "groups", "omit", "vars", "environment",
                        "ansible_play_hosts", "ansible_play_batch", "play_hosts"})


def _plain(value: Any) -> Any:
    """Ansible wraps strings in its own types; hand the rest of drdrill plain data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
