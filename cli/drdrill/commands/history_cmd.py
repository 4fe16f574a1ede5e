"""``drdrill history``: every run under a runs directory, newest first, with the RTO trend."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drdrill.commands.options import runs_dir_option
from drdrill.errors import EXIT_OK, BadInput
from drdrill.report import data, write_atomic
from drdrill.report.history import HistoryRow, Trend, collect_history, to_csv, to_json, trend

_STYLE = {"improving": "green", "worse": "red", "flat": "yellow"}


@click.command()
@click.option("--runbook", metavar="NAME", help="Only runs of this runbook (name or file).")
@runs_dir_option
@click.option("--format", "fmt", type=click.Choice(("table", "csv", "json", "html")),
              default="table", show_default=True,
              help="csv columns: run_id,date,runbook,mode,rto_s,rto_target_s,rpo_s,"
                   "rpo_target_s,lost_writes,met,status.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
def command(runbook: str | None, runs_dir: Path, fmt: str, output: str | None) -> int:
    """One row per run (date, runbook, mode, RTO and RPO against their objectives, lost
    writes, met), newest first, and per runbook whether RTO got better or worse."""
    rows = collect_history(runs_dir, runbook)
    if fmt == "table":
        if not output or output == "-":
            console = Console()
            if not console.is_terminal:  # piped: no wrapping at 80 columns
                console = Console(width=200)
            _table(console, rows, runs_dir, runbook)
            return EXIT_OK
        try:
            with open(output, "w", encoding="utf-8") as fh:
                _table(Console(file=fh, width=160), rows, runs_dir, runbook)
        except OSError as exc:
            raise BadInput(f"cannot write {output}: {exc.strerror}") from exc
        click.echo(output)
        return EXIT_OK
    if fmt == "html":
        from drdrill.report.history_html import render_history_html

        text = render_history_html(rows)
    else:
        text = to_csv(rows) if fmt == "csv" else to_json(rows)
    if output and output != "-":
        try:
            write_atomic(Path(output), text)
        except OSError as exc:
            raise BadInput(f"cannot write {output}: {exc.strerror}") from exc
        click.echo(output)
    else:
        click.echo(text, nl=False)
    return EXIT_OK


def _table(console: Console, rows: list[HistoryRow], runs_dir: Path,
           runbook: str | None) -> None:
    if not rows:
        which = f" of runbook {runbook}" if runbook else ""
        console.print(f"no runs{which} with a readable record.json under {runs_dir}")
        return
    table = Table(title=f"drdrill history ({escape(str(runs_dir))})", title_justify="left")
    for name in ("date (UTC)", "run", "runbook", "mode", "RTO / objective",
                 "RPO / objective", "lost", "met", "status"):
        table.add_column(name, justify="right" if name.startswith(("RTO", "RPO", "lost"))
                         else "left", no_wrap=name in ("date (UTC)", "run"))
    for r in rows:
        met = data.NA if r.met is None else ("[green]met[/]" if r.met else "[red]missed[/]")
        when = r.date[:16].replace("T", " ")
        table.add_row(*(escape(c) for c in (when, r.run_id, r.runbook, r.mode)),
                      f"{_short(r.rto_s)} / {_short(r.rto_target_s)}",
                      f"{_short(r.rpo_s)} / {_short(r.rpo_target_s)}",
                      data.text(r.lost_writes), met, escape(r.status))
    console.print(table)
    for t in trend(rows).values():
        console.print(_trend_line(t))


def _short(seconds: float | None) -> str:
    """Compact duration for the table: 17.5s, 1m20s, 2h05m."""
    if seconds is None:
        return data.NA
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _trend_line(t: Trend) -> str:
    style = _STYLE.get(t.direction, "dim")
    return (f"{escape(t.runbook)}: RTO trend [{style}]{t.direction}[/] (latest "
            f"{data.secs(t.latest_rto_s)}, previous {data.secs(t.previous_rto_s)}) "
            f"{t.sparkline}  {t.runs} run(s)")
