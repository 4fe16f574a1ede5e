"""The self-contained HTML report of one run: verdict, timeline, steps, deviations, environment.

One file, inline CSS and inline SVG, no script and no external reference of any kind (it is
opened on air-gapped desks and archived as evidence). Every value taken from the record is
escaped: runbook names, hosts and error texts are untrusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from drdrill.events import Event
from drdrill.report import data
from drdrill.report.data import NA, Record, Verdict
from drdrill.report.isolated import isolated_lines
from drdrill.report.timeline import render_timeline

CSS = """
:root { --ok:#1b7f3b; --bad:#b3261e; --warn:#b26a00; --muted:#5f6368; --line:#dadce0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color:#202124; margin:0; background:#f6f7f9; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 40px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header .sub { color: var(--muted); margin: 0 0 16px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.verdict { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; }
.card { background:#fff; border:1px solid var(--line); border-left: 6px solid var(--muted);
  border-radius: 6px; padding: 10px 14px; }
.card.met { border-left-color: var(--ok); } .card.missed { border-left-color: var(--bad); }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; }
.card .v { font-size: 22px; font-weight: 600; margin: 2px 0; }
.card .t { color: var(--muted); font-size: 12px; }
.badge { display:inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
  font-weight: 700; color:#fff; background: var(--muted); }
.badge.met, .badge.ok, .badge.passed { background: var(--ok); }
.badge.missed, .badge.failed, .badge.timeout, .badge.aborted, .badge.error {
  background: var(--bad); }
.badge.skipped { background: #80868b; }
.summary { font-size: 15px; margin: 14px 0 0; }
.panel { background:#fff; border:1px solid var(--line); border-radius: 6px; padding: 8px;
  overflow-x: auto; }
table { border-collapse: collapse; width: 100%; background:#fff; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #eef0f3; font-weight: 600; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.mono, code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px;
  word-break: break-all; }
tr.failed td, tr.timeout td, tr.aborted td { background: #fdecea; }
table.checkpoints, table.env { width: auto; min-width: 60%; }
ul.dev li { margin: 2px 0; } .none { color: var(--ok); }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
svg.timeline { font: 12px system-ui, "DejaVu Sans", sans-serif; display:block;
  width: 100%; height: auto; }
svg .rto-window { fill: #b3261e; fill-opacity: .06; }
svg .rto-label { fill: #5f6368; font-weight: 600; } svg .rto-label.met { fill: #1b7f3b; }
svg .rto-label.missed { fill: #b3261e; }
svg .tick, svg .axis-title, svg .note, svg .legend { fill: #5f6368; }
svg .label { fill: #202124; } svg .grid { stroke: #eceef1; }
svg .row-bg { fill: #f8f9fb; }
svg .bar.ok, svg .sw.ok { fill: #34a853; } svg .bar.failed, svg .sw.failed { fill: #d93025; }
svg .bar.skipped { fill: #bdc1c6; } svg .bar.aborted { fill: #7f1d1d; }
svg .bar.other { fill: #9aa0a6; }
svg .bar.manual, svg .sw.manual { fill: #8e63ce; }
svg .bar.manual.failed { fill: #d93025; }
svg .attempt-failed, svg .sw.attempt { fill: #f28b82; stroke: #d93025; stroke-width: 1;
  stroke-dasharray: 3 2; }
svg .probe.up, svg .sw.up { fill: #a8dab5; } svg .probe.down, svg .sw.down { fill: #f28b82; }
svg .canary.acked { stroke: #1e8e3e; stroke-width: 1.2; }
svg .sw.acked { fill: #1e8e3e; } svg .sw.lost { fill: #b3261e; }
svg .canary.failed { stroke: #bdc1c6; stroke-width: 1.2; }
svg .canary.lost { stroke: #b3261e; stroke-width: 2.5; } svg .canary-lost-dot { fill:#b3261e; }
svg .marker { stroke-width: 2; } svg .marker.t0 { stroke: #b3261e; }
svg .marker.restored { stroke: #1b7f3b; }
svg .marker.deadline { stroke: #b26a00; stroke-dasharray: 6 4; }
svg .marker-label { font-weight: 600; } svg .marker-label.t0 { fill: #b3261e; }
svg .marker-label.restored { fill: #1b7f3b; } svg .marker-label.deadline { fill: #b26a00; }
svg .checkpoint { fill: #5f6368; }
@media print { body { background: #fff; } .panel, .card { break-inside: avoid; } }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _state(met: bool | None) -> str:
    return "unknown" if met is None else ("met" if met else "missed")


def _badge(word: str, cls: str | None = None) -> str:
    return f'<span class="badge {_e(cls or word)}">{_e(word.upper())}</span>'


def _card(key: str, value: str, target: str, met: bool | None, badge: bool = True) -> str:
    state = _state(met)
    word = data.met_word(met)
    mark = f"<div>{_badge(word, state)}</div>" if badge else ""
    return (f'<div class="card {state}"><div class="k">{_e(key)}</div>'
            f'<div class="v">{_e(value)}</div><div class="t">{_e(target)}</div>{mark}</div>')


def summary_sentence(v: Verdict) -> str:
    overall = {True: "every objective was met", False: "objectives were missed",
               None: "some results are not available"}[v.met]
    return (f"Run {v.status}: {overall}. RTO {data.secs(v.rto_s)} against "
            f"{data.secs(v.rto_target_s)} ({data.met_word(v.rto_met)}); RPO "
            f"{data.secs(v.rpo_s)} against {data.secs(v.rpo_target_s)} "
            f"({data.met_word(v.rpo_met)}); {data.loss_phrase(v)} "
            f"(data verification {data.met_word(v.data_met)}).")


def _tally(v: Verdict) -> str:
    flags = {"RTO": v.rto_met, "RPO": v.rpo_met, "data": v.data_met}
    missed = [k for k, f in flags.items() if f is False]
    unknown = [k for k, f in flags.items() if f is None]
    if missed:
        return f"{len(missed)} of 3 missed: {', '.join(missed)}"
    if unknown:
        return f"not measured: {', '.join(unknown)}"
    return "RTO, RPO and data all met"


def _verdict(record: Record) -> str:
    v = data.verdict(record)
    lost = ("not measured" if not v.rpo_measured
            else NA if v.lost_writes is None else str(v.lost_writes))
    cards = [
        f'<div class="card {_state(v.met)}"><div class="k">verdict</div>'
        f'<div class="v">{_e(v.status)}</div><div class="t">{_e(_tally(v))}</div>'
        f'<div>{_badge(data.met_word(v.met), _state(v.met))}</div></div>',
        _card("RTO actual", data.secs(v.rto_s), f"target {data.secs(v.rto_target_s)}",
              v.rto_met),
        _card("RPO actual", data.secs(v.rpo_s), f"target {data.secs(v.rpo_target_s)}",
              v.rpo_met),
        _card("lost writes", lost, "acknowledged, missing after recovery", v.data_met),
        _card("downtime observed", data.secs(v.downtime_s),
              "first failure after T0 to restored (no objective)", None, badge=False),
    ]
    return (f'<section class="verdict" aria-label="verdict">{"".join(cards)}</section>'
            f'<p class="summary" id="verdict-text">{_e(summary_sentence(v))}</p>')


def _steps_table(record: Record) -> str:
    rows = []
    for s in data.steps(record):
        who = s.acknowledged_by if s.manual else ""
        attempts = NA if s.attempts is None else str(s.attempts)
        error = f'<div class="t">{_e(s.error)}</div>' if s.error else ""
        phase = " <em>(rollback)</em>" if s.phase == "rollback" else ""
        if s.group:  # members of one group ran at once: their times overlap
            phase += f' <em class="group">(parallel: {_e(s.group)})</em>'
        rows.append(
            f'<tr class="{_e(s.status)}"><td class="num">{_e(s.index)}</td>'
            f"<td>{_e(s.name)}{phase}{error}</td><td>{_e(s.kind)}</td>"
            f'<td class="num">{_e(_time(s.started_at))}</td>'
            f'<td class="num">{_e(_time(s.finished_at))}</td>'
            f'<td class="num">{_e(data.secs(s.duration_s))}</td>'
            f"<td>{_e(data.text(list(s.hosts)))}</td><td>{_badge(s.status)}</td>"
            f'<td class="num">{_e(attempts)}</td><td>{_e(s.mode_word)}</td>'
            f"<td>{_e(who)}</td></tr>")
    if not rows:
        rows.append('<tr><td colspan="11">no steps recorded</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in (
        "#", "step", "kind", "start (UTC)", "end (UTC)", "duration", "hosts", "status",
        "attempts", "manual/automated", "acknowledged by"))
    return (f'<table class="steps"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _time(wall: str) -> str:
    """``2026-03-14T09:00:12.000Z`` → ``09:00:12.000`` (the date is in the header)."""
    if len(wall) >= 23 and wall[10] == "T":
        return wall[11:23]
    return wall


def _deviations(record: Record) -> str:
    items = data.deviations(record)
    if not items:
        return ('<p class="none">No deviations: every step ran once and succeeded, every '
                'objective was met.</p>')
    return '<ul class="dev">' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _outages(record: Record) -> str:
    """Every outage the service probe saw (the failback's planned one too)."""
    rows = "".join(
        f'<tr><td class="num">+{_e(data.secs(o.start_s))}</td>'
        f'<td class="num">{_e(_until(o.end_s))}</td>'
        f'<td class="num">{_e(data.secs(o.duration_s))}</td><td>{_e(o.step)}</td></tr>'
        for o in data.outages(record))
    if not rows:
        return '<p class="none">No outage recorded by the service probe.</p>'
    return ('<table class="outages"><thead><tr><th>from</th><th>to</th><th>duration</th>'
            f'<th>began during step</th></tr></thead><tbody>{rows}</tbody></table>')


def _until(end_s: float | None) -> str:
    return "not restored" if end_s is None else "+" + data.secs(end_s)


def _kv_table(rows: Sequence[tuple[str, str]], cls: str) -> str:
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td class="mono">{_e(v)}</td></tr>'
                   for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def _checkpoints(record: Record, events: Sequence[Event]) -> str:
    rows = "".join(f'<tr><th scope="row">{_e(name)}</th><td class="mono">{_e(wall)}</td>'
                   f'<td class="num">+{_e(data.secs(mono))}</td></tr>'
                   for name, wall, mono in data.instants(record, events))
    return (f'<table class="checkpoints"><thead><tr><th>checkpoint</th><th>UTC</th>'
            f'<th>from start</th></tr></thead><tbody>{rows}</tbody></table>') if rows else ""


def _isolated(record: Record) -> str:
    """run --isolated: the banner comes first, so nobody reads a failover of production."""
    lines = isolated_lines(record)
    if not lines:
        return ""
    rest = "".join(f"<br>{_e(line)}" for line in lines[1:])
    return (f'<p id="isolated" style="background:#5b2a86;color:#fff;padding:10px 14px;'
            f'font-size:15px"><strong>{_e(lines[0])}</strong>{rest}</p>')


def render_html(record: Record, events: Sequence[Event]) -> str:
    runbook = data.section(record, "runbook")
    title = f"DR {data.text(record.get('mode'))} report: {data.text(runbook.get('name'))}"
    sub = (f"run {data.text(record.get('run_id'))} · {data.text(record.get('started_at'))} → "
           f"{data.text(record.get('finished_at'))} · operator "
           f"{data.text(record.get('operator'))}")
    exercise = data.exercise_id(record)
    if exercise:
        sub += f" · exercise {exercise}"
    checkpoints = _checkpoints(record, events)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f'<header>{_isolated(record)}<h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p>'
        f"{_verdict(record)}</header>",
        '<h2 id="timeline">Timeline</h2><div class="panel">'
        f"{render_timeline(record, events)}</div>",
        f'<h2 id="steps">Steps</h2>{_steps_table(record)}',
        f'<h2 id="outages">Outages</h2>{_outages(record)}',
        f'<h2 id="deviations">Deviations</h2>{_deviations(record)}',
    ]
    if checkpoints:
        parts.append(f'<h2 id="checkpoints">Checkpoints</h2>{checkpoints}')
    parts += [
        f'<h2 id="environment">Environment</h2>{_kv_table(data.environment(record), "env")}',
        f"<footer>Derived from journal.jsonl by drdrill "
        f"{_e(data.text(record.get('drdrill_version')))}; journal last hash "
        f"<code>{_e(data.text(record.get('journal_last_hash')))}</code>. "
        f"Times are UTC; durations come from the monotonic clock.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"
