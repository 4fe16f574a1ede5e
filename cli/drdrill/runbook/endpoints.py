"""``{{ name }}`` in probe, canary and named-probe options: endpoints come from the inventory.

A runbook names *what* to probe; the inventory (its ``all`` vars) and ``-e`` say *where*, so
one runbook runs on the lab, staging and production with a different ``-i`` only. The
substitution is plain text replacement of a strictly named ``{{ name }}`` — never a shell,
never Jinja — so a value may hold any character without becoming code. Precedence is the
one the playbooks see for the same names: inventory ``all`` vars < runbook ``vars:`` < ``-e``;
a ``secrets:`` name takes its value from ``DRDRILL_SECRET_<NAME>`` first, else -e or the
runbook's vars — as the run does, which masks exactly those values — never the inventory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from drdrill.executors.inventory import Inventory
from drdrill.runbook.source import PathItem, Problem, Source
from drdrill.runbook.walk import raw_steps

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TEMPLATE = re.compile(r"\{\{\s*(" + NAME + r")\s*\}\}")
_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)


@dataclass(frozen=True)
class Bindings:
    """What each ``{{ name }}`` may become. ``pending`` names exist but have no usable value
    now (an inventory value Ansible could not render, a secret not supplied), with the
    reason; with ``strict`` (a run, a preflight) they are problems, else (validate) not."""

    values: Mapping[str, str]
    pending: Mapping[str, str]
    inventory: str
    strict: bool


def secret_env(name: str) -> str:
    """The environment variable that supplies secret ``name`` (as for playbooks)."""
    return f"DRDRILL_SECRET_{name.upper()}"


def make_bindings(data: Mapping[str, Any], inventory: Inventory,
                  extra_vars: Mapping[str, Any] | None = None,
                  strict: bool = False) -> Bindings:
    """The bindings for runbook ``data`` (raw YAML data) with ``inventory`` and ``-e``."""
    values: dict[str, str] = {}
    pending: dict[str, str] = {}
    raw_vars = data.get("vars")
    runbook_vars: Mapping[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
    layers: list[tuple[str, Mapping[str, Any]]] = [
        ("the inventory's all vars", inventory.all_vars), ("the runbook's vars:", runbook_vars),
        ("-e", extra_vars or {})]
    for where, layer in layers:
        for name, value in layer.items():
            _bind(str(name), value, where, values, pending, literal=where == "-e")
            if layer is inventory.all_vars and name in inventory.unrendered:
                pending[name] = (
                    f"defined in the inventory but cannot be rendered now "
                    f"({inventory.unrendered[name]}) — make what it reads available (the "
                    "lab: drdrill lab up) or fix the inventory")
    raw_secrets = data.get("secrets")
    for name in raw_secrets if isinstance(raw_secrets, list) else []:
        # from where the run takes (and masks) secrets only: never the inventory's text
        name = str(name)
        supplied = os.environ.get(secret_env(name))
        given = {**runbook_vars, **(extra_vars or {})}
        values.pop(name, None)
        pending.pop(name, None)
        if supplied is not None:
            values[name] = supplied
        elif scalar_text(given.get(name)) is not None:
            values[name] = str(scalar_text(given.get(name)))
        else:
            pending[name] = (f"a secret that is not supplied — set {secret_env(name)} "
                             f"or pass -e {name}=...")
    return Bindings(MappingProxyType(values), MappingProxyType(pending),
                    str(inventory.path), strict)


def scalar_text(value: Any) -> str | None:
    """A value as the text it stands for in an option, or None if it is not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _bind(name: str, value: Any, where: str, values: dict[str, str],
          pending: dict[str, str], literal: bool) -> None:
    """Record ``name``'s value from ``where``. A ``{{`` left in an inventory or runbook value
    is a template nobody rendered (not data); ``-e`` text is the operator's, taken as is."""
    text = scalar_text(value)
    if text is None:
        values.pop(name, None)
        pending[name] = f"set in {where} to a list or mapping, not text — give it a string"
    elif "{{" in text and not literal:
        values.pop(name, None)
        pending[name] = (f"its value in {where} is itself a template ({text[:60]!r}); "
                         "drdrill substitutes data only — give the final text")
    else:
        values[name] = text
        pending.pop(name, None)


def endpoint_sites(data: Mapping[str, Any]) -> Iterator[tuple[list[PathItem], dict[str, Any]]]:
    """Every options mapping whose strings may use ``{{ name }}``: service.probe, canary,
    probes.*, and inline probe / wait_for steps (also under rollback:)."""
    service = data.get("service")
    if isinstance(service, dict) and isinstance(service.get("probe"), dict):
        yield ["service", "probe"], service["probe"]
    if isinstance(data.get("canary"), dict):
        yield ["canary"], data["canary"]
    probes = data.get("probes")
    for name, spec in (probes.items() if isinstance(probes, dict) else ()):
        if isinstance(spec, dict):
            yield ["probes", name], spec
    for path, step in raw_steps(data):  # parallel group members included
        for kind in ("probe", "wait_for"):
            if isinstance(step.get(kind), dict):
                yield [*path, kind], step[kind]


def option_strings(value: Any,
                   path: list[PathItem]) -> Iterator[tuple[list[PathItem], str]]:
    """Every string inside an option value, with its path (for located problems)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from option_strings(item, [*path, str(key)])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from option_strings(item, [*path, i])


def template_problems(source: Source, bindings: Bindings) -> list[Problem]:
    """Each ``{{ ... }}`` in an endpoint option that is not a plain name, names nothing, or
    (strict) has no usable value now — located at the option, with what to do."""
    out: list[Problem] = []
    for site, spec in endpoint_sites(source.data):
        for path, text in option_strings(spec, site):
            out.extend(source.problem(path, message)
                       for message in _messages(text, bindings))
    return out


def _messages(text: str, bindings: Bindings) -> Iterator[str]:
    for match in _BRACES.finditer(text):
        named = TEMPLATE.fullmatch(match.group(0))
        if named is None:
            yield (f"{match.group(0)[:60]!r} is not a variable name — only "
                   "{{ name }} is substituted here (letters, digits, _), never an expression; "
                   "put the value in a variable of the inventory's all vars and use its name")
            continue
        name = named.group(1)
        if name in bindings.values:
            continue
        if name in bindings.pending:
            if bindings.strict:
                yield f"{{{{ {name} }}}} is {bindings.pending[name]}"
            continue
        yield (f"{{{{ {name} }}}} is not defined — define {name} in the inventory's "
               f"all vars ({bindings.inventory}) or pass -e {name}=...")


def substitute(value: Any, bindings: Bindings | None) -> Any:
    """``value`` with every resolvable ``{{ name }}`` in its strings replaced (data only)."""
    if bindings is None:
        return value
    if isinstance(value, str):
        return TEMPLATE.sub(lambda m: bindings.values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: substitute(v, bindings) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, bindings) for v in value]
    return value
