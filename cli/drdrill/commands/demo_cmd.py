"""``drdrill demo``: lab up (if needed), the PostgreSQL failover drill, the verdict and
where everything is. The drill fails back, so the lab is ready for the next run."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from drdrill.commands.options import runs_dir_option
from drdrill.commands.run_cmd import Interrupts
from drdrill.engine.runner import RunOptions, run_drill
from drdrill.lab import LabConfig, default_lab_dir, lab_up
from drdrill.lab.demo import locate_demo_inputs
from drdrill.view.live import LiveView
from drdrill.view.verdict import render_verdict


@click.command()
@runs_dir_option
@click.option("--operator", help="Who runs the demo (default: the OS user).")
def command(runs_dir: Path, operator: str | None) -> int:
    """Start the embedded lab if needed and run drills/postgres-failover.yml on it with
    --yes: crash the primary, fence, promote, verify, reconcile, fail back."""
    runbook, inventory = locate_demo_inputs()
    console = Console()
    started = time.monotonic()
    console.print("[bold]1/2[/bold] lab up (PostgreSQL primary + hot standby on 127.0.0.1)")
    status = lab_up(LabConfig(default_lab_dir()))
    for node in status.nodes:
        console.print(f"  {node.name}: {node.role} on port {node.port}", markup=False)
    console.print(f"[bold]2/2[/bold] drill {runbook}")
    with Interrupts() as interrupts, LiveView(console, plain=not console.is_terminal) as view:
        result = run_drill(RunOptions(runbook=runbook, inventory=inventory, yes=True,
                                      operator=operator, runs_dir=runs_dir),
                           handlers=[view], cancel=interrupts.cancel,
                           hard_stop=interrupts.hard_stop)
    render_verdict(console, result.record, str(result.run_dir))
    report = result.run_dir / "report.html"
    if report.is_file():
        console.print(f"  report: {report}", markup=False)
    console.print(f"demo took {time.monotonic() - started:.1f}s. Run it again any time; "
                  "stop the lab with: drdrill lab down", markup=False)
    return result.exit_code
