"""``drdrill run``: parse, run the drill through the core, render the verdict."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click
from rich.console import Console

from drdrill.commands.options import inventory_option, parse_pairs, runs_dir_option
from drdrill.commands.prompts import TerminalInteraction, no_echo
from drdrill.engine.runner import RunOptions, run_drill
from drdrill.errors import BadInput
from drdrill.journal.store import JOURNAL_NAME, read_events
from drdrill.view.live import LiveView
from drdrill.view.verdict import render_verdict


def parse_declared_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"--declared-at {value!r}: not ISO 8601 (e.g. 2026-11-22T03:04:05Z)") \
            from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Interrupts:
    """First Ctrl-C/SIGTERM: abort the step and roll back. Second: stop the rollback too."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.hard_stop = threading.Event()
        self._previous: dict[int, object] = {}
        # told at once (the live view shows "stopping: ..."); True on the second signal
        self.listener: Callable[[bool], None] | None = None

    def __enter__(self) -> Interrupts:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel.is_set():
            self.hard_stop.set()
        self.cancel.set()
        if self.listener is not None:
            self.listener(self.hard_stop.is_set())

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def print_handoff(console: Console, run_dir: Path) -> None:
    """Incident mode, a step failed: where things stand and the command to continue."""
    handoff = next((e for e in read_events(run_dir / JOURNAL_NAME)
                    if e.type == "incident_handoff"), None)
    if handoff is None:
        return
    data = handoff.data
    console.print("[bold]INCIDENT: stopped, handed over to you (no automatic rollback)[/]",
                  highlight=False)
    console.print(f"  last completed step: {data.get('last_completed') or '(none)'}",
                  markup=False, highlight=False)
    console.print(f"  failed step:         {data.get('failed_step')} ({data.get('status')})",
                  markup=False, highlight=False)
    console.print(f"  error:               {data.get('error')}", markup=False, highlight=False)
    console.print("  fix the cause, then continue with:", highlight=False)
    console.print(f"    {data.get('continue_command')}", markup=False, highlight=False,
                  soft_wrap=True)


@click.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@inventory_option(required=True)
@click.option("--mode", type=click.Choice(["drill", "incident"]), default="drill",
              show_default=True, help="incident: no fault injection, T0 = --declared-at.")
@click.option("--declared-at", help="Incident mode: when the incident was declared (ISO 8601).")
@click.option("--from", "from_step", metavar="STEP",
              help="Incident mode: start at STEP; the earlier steps are journaled as done "
              "outside drdrill by --operator.")
@click.option("-e", "extra", multiple=True, metavar="KEY=VALUE", help="Extra variable (repeat).")
@click.option("--yes", is_flag=True, help="Acknowledge manual steps and gates automatically "
              "(recorded as such; never confirms production).")
@click.option("--confirm", metavar="ENV", help="Confirm a production run by its name.")
@click.option("--operator", help="Who runs the drill (default: the OS user).")
@click.option("--isolated", is_flag=True, help="Drill the recovery on a clone (the runbook's "
              "isolation: section) while production keeps serving; docs/isolated.md.")
@click.option("--exercise", type=click.Path(path_type=Path), metavar="FILE",
              help="Joint exercise manifest: stamp the run, use its T0, sign record.json.")
@click.option("--participant", metavar="NAME", help="With --exercise: who runs it.")
@click.option("--key", "exercise_key", type=click.Path(path_type=Path), metavar="FILE",
              help="With --exercise: the participant's signing key (default "
              "$DRDRILL_EXERCISE_KEY).")
@click.option("--no-prestage", is_flag=True, help="Start each playbook step's Ansible when "
              "the step is due, not ahead of time held at a release (to compare).")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON on stdout only.")
def command(runbook: Path, inventory: Path, mode: str, declared_at: str | None,
            from_step: str | None, extra: tuple[str, ...], yes: bool, confirm: str | None,
            operator: str | None, isolated: bool, exercise: Path | None, participant: str | None,
            exercise_key: Path | None, no_prestage: bool, runs_dir: Path,
            as_json: bool) -> int:
    """Run RUNBOOK against INVENTORY, measure RTO/RPO, and record the evidence."""
    options = RunOptions(runbook=runbook, inventory=inventory, mode=mode,
                         declared_at=parse_declared_at(declared_at),
                         extra_vars=parse_pairs(extra), yes=yes, confirm=confirm,
                         operator=operator, runs_dir=runs_dir, from_step=from_step,
                         exercise=exercise, participant=participant,
                         exercise_key=exercise_key, isolated=isolated,
                         prestage=not no_prestage)
    console = Console(stderr=as_json)
    with Interrupts() as interrupts, LiveView(console, plain=not console.is_terminal) as view, \
            no_echo(view.interactive and sys.stdin.isatty()):
        interrupts.listener = view.interrupted
        interaction = None if yes or not sys.stdin.isatty() else TerminalInteraction(
            console, operator, view, cancel=interrupts.cancel)
        result = run_drill(options, handlers=[view], interaction=interaction,
                           cancel=interrupts.cancel, hard_stop=interrupts.hard_stop)
    if as_json:
        click.echo(json.dumps(result.record, indent=2, sort_keys=True, default=str))
    else:
        render_verdict(console, result.record, str(result.run_dir))
    print_handoff(console, result.run_dir)
    return result.exit_code
