"""The one-screen verdict printed at the end of a run."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from drdrill.journal.store import JOURNAL_NAME, read_events
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
    isolated = record.get("isolated")
    if isinstance(isolated, dict):
        _isolated_header(console, isolated)
    console.print(Text(f"Run {record.get('run_id')}: {status.upper()}", style=f"bold {colour}"))
    if record.get("reason"):
        console.print(f"  reason: {record['reason']}", markup=False)
    for note in record.get("verdict_notes") or []:  # reported, not judged
        console.print(f"  note: {note}", style="yellow", markup=False)
    table = Table(box=None, padding=(0, 2))
    for col in ("objective", "actual", "target", "verdict"):
        table.add_column(col)
    table.add_row("RTO", _seconds(results.get("rto_s")), _seconds(objectives.get("rto_s")),
                  _met(results.get("rto_met")))
    table.add_row("RPO", _seconds(results.get("rpo_s")), _seconds(objectives.get("rpo_s")),
                  _met(results.get("rpo_met")))
    console.print(table)
    lost = results.get("lost_writes")
    if results.get("rto_basis") == "bound":  # incident: restored before drdrill looked
        console.print(f"  RTO bound: at most {_seconds(results.get('rto_bound_s'))} (not "
                      f"measured: {results.get('rto_reason')})", style="bold yellow",
                      markup=False)
    if results.get("rpo_basis") == "bound":  # incident: the database's bound, not measured
        console.print(f"  RPO bound: {_seconds(results.get('rpo_bound_s'))} (a bound, not "
                      "measured: T0 minus the promoted standby's last replayed commit)",
                      style="bold yellow", markup=False)
    if results.get("rpo_basis") == "not_measured":  # an unreadable store is not a loss
        console.print(f"  RPO not measured: {results.get('rpo_reason')}; "
                      f"{results.get('acked_writes', 0)} writes acknowledged",
                      style="bold yellow", markup=False)
    else:
        console.print(f"  lost writes: {'n/a' if lost is None else lost} of "
                      f"{results.get('acked_writes', 0)} acknowledged", markup=False)
    console.print(f"  downtime observed: {_seconds(results.get('downtime_s'))}; T0 set by "
                  f"{results.get('t0_source') or 'n/a'}", markup=False)
    for outage in results.get("outages") or []:
        end = outage.get("end_s")
        console.print(f"  outage +{_seconds(outage.get('start_s'))} → "
                      f"{'not restored' if end is None else '+' + _seconds(end)} "
                      f"({_seconds(outage.get('duration_s'))}) during "
                      f"{outage.get('step') or 'no step'}", markup=False)
    for err in [*record.get("background_errors", []), *record.get("handler_errors", [])]:
        who = err.get("thread") or err.get("handler")
        console.print(f"  background error in {who}: {err.get('error')}", style="yellow",
                      markup=False)
    split = results.get("time_split")
    if split:
        console.print(f"  T0 → service restored: automated steps "
                      f"{_seconds(split.get('automated_s'))}, human steps "
                      f"{_seconds(split.get('human_s'))}, waiting "
                      f"{_seconds(split.get('waiting_s'))}", markup=False)
    steps = Table(box=None, padding=(0, 2))
    for col in ("step", "status", "duration", "attempts"):
        steps.add_column(col)
    for step in record.get("steps", []):
        phase = step.get("phase")
        label = step["name"] if phase == "main" else f"({phase}) {step['name']}"
        steps.add_row(Text(str(label)), str(step.get("status")), _seconds(step.get("duration_s")),
                      str(step.get("attempts")))
    console.print(steps)
    for step in record.get("steps", []):  # why, in the failing task's own words
        if step.get("error") and step.get("status") != "ok":
            console.print(f"  {step['name']}: {step['error']}", style="red", markup=False)
    console.print(f"  run directory: {run_dir}", markup=False)
    for line in _next_commands(record, run_dir):
        console.print(f"  next: {line}", style="bold", markup=False)


def _isolated_header(console: Console, iso: dict[str, Any]) -> None:
    """An isolated run must never be mistaken for a failover of production."""
    console.print(Text(f"{iso.get('banner')}", style="bold reverse magenta"))
    lag = iso.get("lag_bytes")
    console.print(f"  recovered a clone of {iso.get('cloned_from') or '?'} cloned at "
                  f"{iso.get('cloned_at') or '?'} (clone {iso.get('clone_endpoint') or '?'}, "
                  f"copy {_seconds(iso.get('clone_s'))}); lag at clone time: "
                  f"{'not measured' if lag is None else f'{lag} bytes'}, "
                  f"{_seconds(iso.get('lag_s'))} ({iso.get('lag_s_kind') or 'n/a'}); "
                  f"teardown {iso.get('teardown')}", markup=False)
    skipped = iso.get("skipped_steps") or []
    if skipped:
        console.print(f"  not run (isolated: false): {', '.join(map(str, skipped))}",
                      markup=False)


def _next_commands(record: dict[str, Any], run_dir: str) -> list[str]:
    """What to run after a run that did not complete: every abort says where to go next."""
    status = str(record.get("status"))
    if status == "error":
        return [f"a drdrill bug: the traceback is in {run_dir}/error.txt — please report it"]
    if status != "aborted":
        return []
    rollback = [s for s in record.get("steps", []) if s.get("phase") == "rollback"]
    bad = [s for s in rollback if s.get("status") != "ok"]
    if bad:
        return [f"the rollback did not finish ({bad[0]['name']}: {bad[0].get('status')}): "
                "bring the environment back by hand (the lab: drdrill lab repair)"]
    if not rollback:
        return ["no rollback ran: check the environment (the lab: drdrill lab status, "
                "drdrill lab repair)"]
    swapped = _swapped_primary(run_dir)
    if swapped:
        return [f"roles are swapped: {swapped} is now the primary; fail back before the next "
                "run", "drdrill lab repair (the lab)", _failback_elsewhere(run_dir)]
    return ["rolled back; check the environment before the next run "
            "(the lab: drdrill lab status)"]


def _failback_elsewhere(run_dir: str) -> str:
    """On hosts that are not the lab: the failback playbook of the run's own snapshot,
    against the inventory the run used (the rollback already rejoined the old primary as a
    standby, so the planned switchover back is what is left)."""
    failback = Path(run_dir) / "runbook" / "playbooks" / "pg-failback.yml"
    journal = Path(run_dir) / JOURNAL_NAME
    started = next((e for e in read_events(journal) if e.type == "run_started"), None) \
        if journal.is_file() else None
    inventory = str(((started.data if started else {}).get("inventory") or {}).get("path")
                    or "INVENTORY")
    if not failback.is_file():
        return f"other hosts: run the runbook's failback steps against {inventory}"
    return f"other hosts: ansible-playbook -i {shlex.quote(inventory)} " \
           f"{shlex.quote(str(failback))}"


def _swapped_primary(run_dir: str) -> str | None:
    """The node the rollback left as the primary when it is not the runbook's primary (the
    ``roles_swapped`` fact journaled by pg-ensure-primary.yml), else None. Read from the
    journal, not by asking the database: the view reports what the run recorded."""
    journal = Path(run_dir) / JOURNAL_NAME
    if not journal.is_file():
        return None
    facts = [e for e in read_events(journal)
             if e.type == "fact" and e.data.get("name") == "roles_swapped"]
    return str(facts[-1].data.get("value") or "?") if facts else None
