"""``drdrill resume RUN``: continue a run whose orchestrator died."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from drdrill.commands.options import resolve_run_dir, runs_dir_option
from drdrill.commands.prompts import TerminalInteraction
from drdrill.commands.run_cmd import Interrupts
from drdrill.engine.resume import resume_drill
from drdrill.view.live import LiveView
from drdrill.view.verdict import render_verdict


@click.command()
@click.argument("run")
@click.option("--assume", type=click.Choice(["done", "redo"]),
              help="For a non-idempotent step that was in flight: did it take effect?")
@click.option("--yes", is_flag=True, help="Acknowledge remaining manual steps automatically.")
@click.option("--key", "exercise_key", type=click.Path(path_type=Path), metavar="FILE",
              help="An exercise run: the participant's signing key it was started with, to "
              "sign the resumed record (default $DRDRILL_EXERCISE_KEY).")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON on stdout only.")
def command(run: str, assume: str | None, yes: bool, exercise_key: Path | None,
            runs_dir: Path, as_json: bool) -> int:
    """Continue RUN (a run id or directory) from its journal: finished steps are not run
    again; checkpoints and T0 keep their instants; the dead time is recorded as a gap."""
    run_dir = resolve_run_dir(run, runs_dir)
    console = Console(stderr=as_json)
    with Interrupts() as interrupts, LiveView(console, plain=not console.is_terminal) as view:
        interaction = None if yes or not sys.stdin.isatty() else TerminalInteraction(
            console, None, view)
        result = resume_drill(run_dir, assume, handlers=[view], interaction=interaction,
                              cancel=interrupts.cancel, hard_stop=interrupts.hard_stop, yes=yes,
                              exercise_key=exercise_key)
    if as_json:
        click.echo(json.dumps(result.record, indent=2, sort_keys=True, default=str))
    else:
        render_verdict(console, result.record, str(result.run_dir))
    return result.exit_code
