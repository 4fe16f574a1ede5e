"""``drdrill preflight``: are the runbook's hosts reachable, verified, on time, with disk
and without drift, and (a PostgreSQL service) do its endpoints answer, is replication
streaming within bounds, do the standby's settings match the primary's? Exit 0 all checks
passed (warnings allowed); 2 not ready (a check failed: DESIGN.md's environment-not-ready)
or bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.commands.options import extra_vars_option, inventory_option, parse_pairs
from drdrill.engine.preflight import CheckResult, run_preflight
from drdrill.engine.readiness import check_database
from drdrill.errors import EXIT_BAD_INPUT, EXIT_OK
from drdrill.executors.inventory import Inventory, load_inventory
from drdrill.executors.ssh import SshPool
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@inventory_option(required=True)
@click.option("--accept-new-host-keys", is_flag=True,
              help="Accept and record the key of a host not yet in known_hosts (a changed "
                   "key is always refused). Verify fingerprints out of band first.")
@click.option("--isolated", is_flag=True,
              help="Also what run --isolated needs: a valid isolation: section (roles and "
                   "endpoints mapped, nothing isolated acting on production) and the "
                   "clone's endpoint free (no clone left by an earlier run).")
@extra_vars_option
def command(runbook: Path, inventory: Path, accept_new_host_keys: bool, isolated: bool,
            extra: tuple[str, ...]) -> int:
    """Check RUNBOOK's hosts over SSH (in parallel): reachable, host key matches
    known_hosts, authenticates, clock offset, free disk on data paths, and drift between
    the roles the runbook's `preflight` section names; for a PostgreSQL service, through
    its DSN: each endpoint answers, one is writable, standbys stream within max_lag_bytes,
    declared settings match the primary's. Exit 2 if any check fails."""
    inv = load_inventory(inventory)
    rb = load_runbook(runbook, inv, extra_vars=parse_pairs(extra), strict=True)
    clone_checks = _isolated_checks(runbook, inv, parse_pairs(extra)) if isolated else []
    console = Console()
    table = Table(box=None, padding=(0, 2))
    for col in ("host", "check", "result", "time", "detail"):
        table.add_column(col)

    extra_vars = parse_pairs(extra)
    with SshPool(accept_new_host_keys=accept_new_host_keys) as pool:
        report = run_preflight(rb, inv, pool, lambda _type, _data: None)
    database = check_database(rb, inv, {**rb.vars, **extra_vars})
    results = [*sorted(report.results, key=lambda r: r.host), *database,  # order kept
               *clone_checks]
    for r in results:
        verdict = Text("warn", style="yellow") if r.warning else (
            Text("ok", style="green") if r.ok else Text("FAIL", style="bold red"))
        table.add_row(Text(r.host), Text(r.check), verdict, f"{r.duration_s:.3f}s",
                      Text(r.detail))
    console.print(table)
    failures = [r for r in results if not r.ok]
    warned = sum(1 for r in results if r.warning)
    warn_text = f", {warned} warning{'s' if warned != 1 else ''}" if warned else ""
    if failures:
        console.print(f"{len(results)} checks, {len(failures)} failed{warn_text}: not ready")
        for r in failures:
            console.print(Text(f"FAIL {r.check} on {r.host}: {r.detail}", style="red"))
    else:
        console.print(f"{len(results)} checks passed{warn_text}")
    return EXIT_BAD_INPUT if failures else EXIT_OK


def _isolated_checks(runbook: Path, inventory: Inventory,
                     extra_vars: dict[str, Any]) -> list[CheckResult]:
    """The isolated runbook as run --isolated loads it (its validation refuses, exit 2, an
    isolated path that would act on production), then the clone's endpoints. Production
    (the standby the clone is made from, the primary whose position it reads) is checked
    by the ordinary checks above."""
    from drdrill.engine.isolation import check_isolated, clone_endpoint_checks, isolated_runbook

    loaded = load_runbook(runbook, inventory, extra_vars=extra_vars, strict=True, isolated=True)
    check_isolated(loaded, "drill", None, None)
    return clone_endpoint_checks(isolated_runbook(loaded), inventory)

