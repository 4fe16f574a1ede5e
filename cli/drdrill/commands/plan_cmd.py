"""``drdrill plan``: what a run would do, in order, on which hosts, within which budget —
and, from earlier runs of the runbook, how long it is likely to take."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.commands.options import inventory_option, runs_dir_option
from drdrill.engine.plan import Plan, PlannedStep, build_plan
from drdrill.engine.predict import Prediction, Spread, predict, verdict_words
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.durations import format_duration
from drdrill.runbook.loader import load_runbook


@click.command()
@click.argument("runbook", type=click.Path(path_type=Path))
@inventory_option(required=True)
@click.option("--mode", type=click.Choice(["drill", "incident"]), default="drill",
              show_default=True)
@click.option("--isolated", is_flag=True,
              help="The plan of run --isolated: the clone build, the steps that run on the "
                   "clone (roles mapped), its teardown, and what does not run.")
@runs_dir_option
def command(runbook: Path, inventory: Path, mode: str, isolated: bool, runs_dir: Path) -> int:
    """Show RUNBOOK's ordered steps for a mode, their hosts and timeouts, and warn when the
    steps between T0 and service restored could exceed the RTO objective.

    With earlier completed runs of the runbook in that mode under --runs-dir, also each
    step's past duration (median and worst) and the RTO they predict: the median and worst
    of those runs' measured RTO, and the per-step sum over the RTO path."""
    inv = load_inventory(inventory)
    loaded = load_runbook(runbook, inv, isolated=isolated)
    if isolated:
        from drdrill.engine.isolation import check_isolated, isolated_runbook

        check_isolated(loaded, mode, None, None)
        loaded = isolated_runbook(loaded)
    plan = build_plan(loaded, inv, mode, isolated=isolated)
    prediction = predict(plan, runs_dir)
    console = Console()
    rb = plan.runbook
    if rb.isolation is not None and isolated:
        console.print(Text("ISOLATED TEST — production is not failed over: T0 is the end of "
                           "the clone build; not run (isolated: false): "
                           + (", ".join(rb.isolation.skipped) or "none"), style="bold"))
    console.print(f"[bold]{rb.name}[/bold] ({mode} mode) — RTO objective "
                  f"{format_duration(rb.objectives.rto_s)}, RPO objective "
                  f"{format_duration(rb.objectives.rpo_s)}")
    console.print(_table(plan, prediction))
    if plan.rto_path_budget_s is not None:
        budget = format_duration(plan.rto_path_budget_s)
        console.print(f"RTO path budget (sum of timeouts): {budget}")
    for line in _prediction_lines(prediction, runs_dir):
        console.print(Text(line))
    for warning in plan.warnings + _prediction_warnings(prediction):
        console.print(Text(f"warning: {warning}", style="yellow"))
    return 0


def _table(plan: Plan, prediction: Prediction) -> Table:
    table = Table(box=None, padding=(0, 2))
    columns = ["#", "step", "kind", "hosts", "timeout"]
    if prediction.runs:
        columns.append("past med/worst")
    for col in (*columns, "notes"):
        table.add_column(col)
    groups = {(g.phase, i): g for g in plan.groups for i in g.indexes}
    for item in plan.isolation + plan.steps + plan.rollback + plan.teardown:
        step = item.step
        main = item in plan.steps
        group = groups.get(("main" if main else "rollback", step.index)) \
            if main or item in plan.rollback else None
        label = str(step.index) if main else (
            f"R{step.index}" if item in plan.rollback else
            f"B{step.index}" if item in plan.isolation else f"T{step.index}")
        timeout = format_duration(step.timeout_s) if step.timeout_s is not None else "-"
        row: list[str | Text] = [label, Text(step.name), step.kind.value,
                                 Text(",".join(item.hosts)), timeout]
        if prediction.runs:
            past = prediction.steps.get(step.name) if main else None
            row.append(_spread(past) if past is not None else "-")
        notes = _notes(item)
        if group is not None:  # members run at once: the group costs its longest member
            cost = "unbounded" if group.budget_s is None else format_duration(group.budget_s)
            notes.insert(0, f"parallel {group.name!r} (group budget {cost})")
        table.add_row(*row, ", ".join(notes))
    return table


def _notes(item: PlannedStep) -> list[str]:
    step = item.step
    return [n for n, on in (("DISASTER (T0)", step.disaster), ("RTO path", item.on_rto_path),
                            ("gate", step.gate),
                            (f"checkpoint {step.checkpoint}", bool(step.checkpoint))) if on]


def _spread(past: Spread) -> str:
    return f"{format_duration(past.median_s)}/{format_duration(past.worst_s)}"


def _prediction_lines(prediction: Prediction, runs_dir: Path) -> list[str]:
    if not prediction.runs:
        return [f"predicted RTO: no history — no completed run of this runbook in this mode "
                f"under {runs_dir} (pass --runs-dir or set $DRDRILL_RUNS_DIR)"]
    objective = format_duration(prediction.objective_s)
    lines = []
    if prediction.rto is not None:
        lines.append(f"predicted RTO (measured RTO of {_last(prediction.rto.runs)}): "
                     f"median {format_duration(prediction.rto.median_s)}, worst "
                     f"{format_duration(prediction.rto.worst_s)} — "
                     f"{verdict_words(prediction.rto, prediction.objective_s)} ({objective})")
    else:
        lines.append(f"predicted RTO: none of {_last(prediction.runs)} measured an RTO")
    if prediction.path_sum is not None:
        total = prediction.path_sum
        lines.append(f"RTO-path steps' sum (each step's past duration, no probe resolution): "
                     f"median {format_duration(total.median_s)}, worst "
                     f"{format_duration(total.worst_s)}")
    elif prediction.path_missing:
        lines.append("RTO-path steps' sum: no past duration for "
                     + ", ".join(prediction.path_missing))
    return lines


def _last(runs: int) -> str:
    return "the last run" if runs == 1 else f"the last {runs} runs"


def _prediction_warnings(prediction: Prediction) -> tuple[str, ...]:
    rto = prediction.rto
    if rto is None or rto.worst_s <= prediction.objective_s:
        return ()
    return (f"past runs' worst RTO {format_duration(rto.worst_s)} is over the RTO objective of "
            f"{format_duration(prediction.objective_s)}",)
