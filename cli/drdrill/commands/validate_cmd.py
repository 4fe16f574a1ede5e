"""``drdrill validate RUNBOOK... [-i INVENTORY] [-e KEY=VALUE]...``: schema and semantic
checks, every problem as ``file:line:col: message`` on stderr, ``ok: <file> (<n> steps)`` per
good file. Without -i, ``{{ name }}`` endpoints cannot be checked: a note says so."""

from __future__ import annotations

from pathlib import Path

import click

from drdrill.commands.options import extra_vars_option, parse_pairs
from drdrill.errors import EXIT_BAD_INPUT, EXIT_OK, ValidationFailed
from drdrill.executors.inventory import load_inventory
from drdrill.exercise.manifest import is_manifest_file, load_manifest
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbooks", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-i", "--inventory", type=click.Path(path_type=Path),
              help="Ansible inventory: every role a step uses must match a host in it, and "
                   "every {{ name }} in probe/canary options must be defined by its all vars.")
@extra_vars_option
@click.option("--isolated", is_flag=True,
              help="Check as `run --isolated` would: the clone's endpoints "
                   "(isolation.endpoints) must be defined by the inventory or -e.")
def command(runbooks: tuple[Path, ...], inventory: Path | None, extra: tuple[str, ...],
            isolated: bool) -> int:
    """Check runbooks against the schema and each other (playbooks exist, probes and roles
    defined, names unique, endpoints resolvable with -i). Exit 2 if any runbook has a problem."""
    inv = load_inventory(inventory, cache=True) if inventory is not None else None
    extra_vars = parse_pairs(extra)
    status = EXIT_OK
    for path in runbooks:
        if is_manifest_file(path):
            status = max(status, _validate_manifest(path))
            continue
        try:
            runbook = load_runbook(path, inventory=inv, extra_vars=extra_vars,
                                   isolated=isolated)
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            status = EXIT_BAD_INPUT
        else:
            click.echo(f"ok: {path} ({len(runbook.steps)} steps)")
            if inv is None and _templated(runbook.service, runbook.canary,
                                          runbook.probes, runbook.steps, runbook.rollback):
                click.echo(f"note: {path}: {{{{ name }}}} endpoints not checked — pass "
                           "-i INVENTORY to check they resolve", err=True)
    return status


def _validate_manifest(path: Path) -> int:
    """A joint-exercise manifest (``kind: exercise``): its schema and checks."""
    try:
        manifest = load_manifest(path)
    except ValidationFailed as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        return EXIT_BAD_INPUT
    click.echo(f"ok: {path} (exercise {manifest.id}, {len(manifest.participants)} "
               "participants)")
    return EXIT_OK


def _templated(*parts: object) -> bool:
    """Whether a built probe/canary still holds ``{{`` (cheap: look at their reprs)."""
    return any("{{" in repr(part) for part in parts)
