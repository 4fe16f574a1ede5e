"""``drdrill preflight``: are the runbook's hosts reachable, verified, on time, with disk
and without drift? Exit 0 all checks passed, 1 a check failed, 2 bad input."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.commands.options import inventory_option
from drdrill.engine.preflight import run_preflight
from drdrill.errors import EXIT_MISSED, EXIT_OK
from drdrill.executors.inventory import load_inventory
from drdrill.executors.ssh import SshPool
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@inventory_option(required=True)
@click.option("--accept-new-host-keys", is_flag=True,
              help="Accept and record the key of a host not yet in known_hosts (a changed "
                   "key is always refused). Verify fingerprints out of band first.")
def command(runbook: Path, inventory: Path, accept_new_host_keys: bool) -> int:
    """Check RUNBOOK's hosts over SSH (in parallel): reachable, host key matches
    known_hosts, authenticates, clock offset, free disk on data paths, and drift between
    the roles the runbook's `preflight` section names."""
    inv = load_inventory(inventory)
    rb = load_runbook(runbook, inv)
    console = Console()
    table = Table(box=None, padding=(0, 2))
    for col in ("host", "check", "result", "time", "detail"):
        table.add_column(col)

    with SshPool(accept_new_host_keys=accept_new_host_keys) as pool:
        report = run_preflight(rb, inv, pool, lambda _type, _data: None)
    for r in sorted(report.results, key=lambda r: r.host):  # stable: check order kept
        verdict = Text("warn", style="yellow") if r.warning else (
            Text("ok", style="green") if r.ok else Text("FAIL", style="bold red"))
        table.add_row(Text(r.host), Text(r.check), verdict, f"{r.duration_s:.3f}s",
                      Text(r.detail))
    console.print(table)
    failed = len(report.failures)
    console.print(f"{len(report.results)} checks, {failed} failed" if failed
                  else f"{len(report.results)} checks passed")
    return EXIT_MISSED if failed else EXIT_OK
