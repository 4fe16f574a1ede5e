"""``drdrill schema``: print the runbook JSON Schema (for editors and other tools)."""

from __future__ import annotations

import click

from drdrill.runbook.schema import schema_text


@click.command()
def command() -> int:
    """Print the runbook JSON Schema (Draft 2020-12).

    \b
    Point a YAML editor at it with a first line such as:
      # yaml-language-server: $schema=../cli/drdrill/schema/runbook.schema.json
    """
    click.echo(schema_text(), nl=False)
    return 0
