"""The ``drdrill`` command group. Each command lives in its own module and only parses
arguments, calls one core function, renders, and maps errors to exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback

import click

from drdrill import __version__
from drdrill.errors import EXIT_BUG, DrdrillError

# one module per command: drdrill.commands.<name>_cmd exposing ``command``
_COMMANDS = (
    "validate", "plan", "preflight", "run", "resume", "report", "history",
    "verify", "lab", "demo", "schema", "exercise",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drdrill")
@click.option("--debug", is_flag=True, help="Show a traceback for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Disaster-recovery drills as declarative runbooks, run through Ansible, with RTO and
    RPO measured from real writes and a tamper-evident journal.

    \b
    Exit status: 0 objectives met, 1 an objective or verification missed,
    2 bad input (nothing executed), 3 aborted (rollback ran where defined).
    """
    ctx.obj = {"debug": debug}


def _register() -> None:
    for name in _COMMANDS:
        module = importlib.import_module(f"drdrill.commands.{name}_cmd")
        cli.add_command(module.command, name)


def main() -> None:
    """Console entry point: the one place errors become exit codes."""
    _register()
    debug = "--debug" in sys.argv[1:]
    try:
        status = cli.main(standalone_mode=False)
        sys.exit(status if isinstance(status, int) else 0)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(3)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except DrdrillError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(3)
    except Exception:  # drdrill's own bug, never the user's bad input: exit 70
        _report_bug(debug)
        sys.exit(EXIT_BUG)


def _report_bug(debug: bool) -> None:
    """Print the traceback (--debug) or keep it in a file and say where: outside a run
    there is no run directory for it (a run's own bug goes to <run dir>/error.txt)."""
    text = traceback.format_exc()
    click.echo(f"internal error (a drdrill bug, please report it): {sys.exc_info()[1]!r}",
               err=True)
    if debug:
        click.echo(text, err=True)
        return
    fd, path = tempfile.mkstemp(prefix="drdrill-error-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    click.echo(f"  traceback: {path} (or run again with --debug)", err=True)
