"""The one-screen verdict printed at the end of a run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.runbook.durations import format_duration


def _seconds(value: Any) -> str:
    return "n/a" if value is None else format_duration(float(value))


def _met(value: Any) -> Text:
    if value is None:
        return Text("not measured", style="dim")
    return Text("MET", style="bold green") if value else Text("MISSED", style="bold red")


def render_verdict(console: Console, record: dict[str, Any], run_dir: str) -> None:
    results = record.get("results", {})
    objectives = record.get("objectives", {})
    status = str(record.get("status"))
    colour = {"passed": "green", "failed": "red"}.get(status, "yellow")
    console.print(Text(f"Run {record.get('run_id')}: {status.upper()}", style=f"bold {colour}"))
    if record.get("reason"):
        console.print(f"  reason: {record['reason']}", markup=False)
    table = Table(box=None, padding=(0, 2))
    for col in ("objective", "actual", "target", "verdict"):
        table.add_column(col)
    table.add_row("RTO", _seconds(results.get("rto_s")), _seconds(objectives.get("rto_s")),
                  _met(results.get("rto_met")))
    table.add_row("RPO", _seconds(results.get("rpo_s")), _seconds(objectives.get("rpo_s")),
                  _met(results.get("rpo_met")))
    console.print(table)
    lost = results.get("lost_writes")
    console.print(f"  lost writes: {'n/a' if lost is None else lost} of "
                  f"{results.get('acked_writes', 0)} acknowledged; downtime observed: "
                  f"{_seconds(results.get('downtime_s'))}", markup=False)
    steps = Table(box=None, padding=(0, 2))
    for col in ("step", "status", "duration", "attempts"):
        steps.add_column(col)
    for step in record.get("steps", []):
        label = step["name"] if step.get("phase") == "main" else f"(rollback) {step['name']}"
        steps.add_row(Text(str(label)), str(step.get("status")), _seconds(step.get("duration_s")),
                      str(step.get("attempts")))
    console.print(steps)
    console.print(f"  run directory: {run_dir}", markup=False)
