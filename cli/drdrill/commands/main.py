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

# One module per command: drdrill.commands.<name>_cmd exposing ``command``, imported only
# when that command runs, so `drdrill --help` loads no command module and `drdrill
# validate` only validate's (in an outage every second of start-up is downtime). `--help`
# lists the commands from these summaries — each command's own short help, kept equal to
# it by tests/unit/test_lazy_imports.py.
_SUMMARIES = {
    "validate": "Check runbooks against the schema and each other (playbooks exist, probes "
                "and roles defined, names unique, endpoints resolvable with -i).",
    "plan": "Show RUNBOOK's ordered steps for a mode, their hosts and timeouts, and warn when "
            "the steps between T0 and service restored could exceed the RTO objective.",
    "preflight": "Check RUNBOOK's hosts over SSH (in parallel): reachable, host key matches "
                 "known_hosts, authenticates, clock offset, free disk on data paths, and "
                 "drift between the roles the runbook's `preflight` section names; for a "
                 "PostgreSQL service, through its DSN: each endpoint answers, one is "
                 "writable, standbys stream within max_lag_bytes, declared settings match "
                 "the primary's.",
    "run": "Run RUNBOOK against INVENTORY, measure RTO/RPO, and record the evidence.",
    "resume": "Continue RUN (a run id or directory) from its journal: finished steps are not "
              "run again; checkpoints and T0 keep their instants; the dead time is recorded "
              "as a gap.",
    "report": "Write a report of RUN (a run id under --runs-dir or a run directory).",
    "history": "One row per run (date, runbook, mode, RTO and RPO against their objectives, "
               "lost writes, met), newest first, and per runbook whether RTO got better or "
               "worse.",
    "verify": "Check RUN's evidence: journal hash chain, record.json against the journal, "
              "artifact checksums.",
    "lab": "The embedded lab: a PostgreSQL primary (pg1) and a streaming hot standby (pg2) "
           "on 127.0.0.1, described by inventory.example.yml.",
    "demo": "Start the embedded lab if needed and run drills/postgres-failover.yml on it "
            "with --yes: crash the primary, fence, promote, verify, reconcile, fail back.",
    "schema": "Print the runbook JSON Schema (Draft 2020-12).",
    "exercise": "Joint industry exercise: one manifest, signed results, one merged report.",
}
_COMMANDS = tuple(_SUMMARIES)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented
    lazy-loading pattern) and listed in --help from ``_SUMMARIES`` without importing."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_SUMMARIES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _SUMMARIES:
            module = importlib.import_module(f"drdrill.commands.{cmd_name}_cmd")
            self.add_command(module.command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # a not-yet-imported command is listed through a stand-in carrying its summary, so
        # click truncates it exactly as it would the command's own help
        rows = [(name, self.commands.get(name, click.Command(name, help=_SUMMARIES.get(name)))
                 .get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main() -> None:
    """Console entry point: the one place errors become exit codes."""
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
