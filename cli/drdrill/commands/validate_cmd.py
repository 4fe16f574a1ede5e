"""``drdrill validate RUNBOOK... [-i INVENTORY]``: schema and semantic checks, every problem
as ``file:line:col: message`` on stderr, ``ok: <file> (<n> steps)`` per good file."""

from __future__ import annotations

from pathlib import Path

import click

from drdrill.errors import EXIT_BAD_INPUT, EXIT_OK, ValidationFailed
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbooks", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-i", "--inventory", type=click.Path(path_type=Path),
              help="Ansible inventory: every role a step uses must match a host in it.")
def command(runbooks: tuple[Path, ...], inventory: Path | None) -> int:
    """Check runbooks against the schema and each other (playbooks exist, probes and roles
    defined, names unique). Exit 2 if any runbook has a problem."""
    inv = load_inventory(inventory) if inventory is not None else None
    status = EXIT_OK
    for path in runbooks:
        try:
            runbook = load_runbook(path, inventory=inv)
        except ValidationFailed as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            status = EXIT_BAD_INPUT
        else:
            click.echo(f"ok: {path} ({len(runbook.steps)} steps)")
    return status
