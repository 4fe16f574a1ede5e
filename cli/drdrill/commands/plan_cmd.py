"""``drdrill plan``: what a run would do, in order, on which hosts, within which budget."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.commands.options import inventory_option
from drdrill.engine.plan import build_plan
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.durations import format_duration
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@inventory_option(required=True)
@click.option("--mode", type=click.Choice(["drill", "incident"]), default="drill",
              show_default=True)
def command(runbook: Path, inventory: Path, mode: str) -> int:
    """Show RUNBOOK's ordered steps for a mode, their hosts and timeouts, and warn when the
    steps between T0 and service restored could exceed the RTO objective."""
    inv = load_inventory(inventory)
    plan = build_plan(load_runbook(runbook, inv), inv, mode)
    console = Console()
    rb = plan.runbook
    console.print(f"[bold]{rb.name}[/bold] ({mode} mode) — RTO objective "
                  f"{format_duration(rb.objectives.rto_s)}, RPO objective "
                  f"{format_duration(rb.objectives.rpo_s)}")
    table = Table(box=None, padding=(0, 2))
    for col in ("#", "step", "kind", "hosts", "timeout", "notes"):
        table.add_column(col)
    for item in plan.steps + plan.rollback:
        step = item.step
        notes = [n for n, on in (("DISASTER (T0)", step.disaster), ("RTO path", item.on_rto_path),
                                 ("gate", step.gate), (f"checkpoint {step.checkpoint}",
                                                       bool(step.checkpoint))) if on]
        label = str(step.index) if item in plan.steps else f"R{step.index}"
        timeout = format_duration(step.timeout_s) if step.timeout_s is not None else "-"
        table.add_row(label, Text(step.name), step.kind.value, Text(",".join(item.hosts)),
                      timeout, ", ".join(notes))
    console.print(table)
    if plan.rto_path_budget_s is not None:
        budget = format_duration(plan.rto_path_budget_s)
        console.print(f"RTO path budget (sum of timeouts): {budget}")
    for warning in plan.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    return 0
