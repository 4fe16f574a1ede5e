"""Self-contained HTML of the run history: per runbook, the trend, an RTO-over-time and an
RPO-over-time chart (inline SVG; the objective drawn as a dashed line; points green when
met, red when missed) and the table of runs. No script, no external reference."""

from __future__ import annotations

import math
from html import escape

from drdrill.report import data
from drdrill.report.history import HistoryRow, trend
from drdrill.report.timeline import axis_label, tick_step

CSS = """
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; color:#202124; margin:0;
  background:#f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 24px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 30px 0 6px; }
.sub, .note { color:#5f6368; } .charts { display:grid; grid-template-columns: 1fr 1fr; gap:12px; }
.panel { background:#fff; border:1px solid #dadce0; border-radius:6px; padding:8px; }
svg.chart { width:100%; height:auto; font: 11px system-ui, "DejaVu Sans", sans-serif; }
svg .grid { stroke:#eceef1; } svg .axis, svg .tick { fill:#5f6368; }
svg .series { fill:none; stroke:#1a73e8; stroke-width:2; }
svg .objective { fill:none; stroke:#b26a00; stroke-width:2; stroke-dasharray:6 4; }
svg .pt.met { fill:#1b7f3b; } svg .pt.missed { fill:#b3261e; } svg .pt.unknown { fill:#9aa0a6; }
svg .title { font-weight:600; fill:#202124; } svg .objective-label { fill:#b26a00; }
table { border-collapse: collapse; width:100%; background:#fff; margin-top:10px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid #dadce0; }
th { background:#eef0f3; font-size:12px; } td.num { text-align:right; white-space:nowrap; }
.badge { border-radius:10px; padding:0 8px; color:#fff; font-size:12px; font-weight:700;
  background:#9aa0a6; } .badge.met { background:#1b7f3b; } .badge.missed { background:#b3261e; }
.trend.improving { color:#1b7f3b; } .trend.worse { color:#b3261e; } .spark { font-size:18px; }
"""

W, H = 520, 240
PX0, PX1, PY0, PY1 = 64, 470, 36, 200  # plot box


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _state(met: bool | None) -> str:
    return "unknown" if met is None else ("met" if met else "missed")


def chart(title: str, rows: list[HistoryRow], actual: str, target: str) -> str:
    """One line chart of ``actual`` over ``rows`` (oldest first) with ``target`` dashed;
    a point is green when within its run's objective, red when not."""
    points: list[tuple[float | None, float | None, bool | None]] = []
    for r in rows:
        value, goal = getattr(r, actual), getattr(r, target)
        points.append((value, goal, None if value is None or goal is None else value <= goal))
    values = [v for p in points for v in p[:2] if v is not None]
    span = max(values + [0.5]) * 1.1
    step = tick_step(span)
    top = math.ceil(span / step) * step
    n = len(rows)

    def px(i: int) -> float:
        return PX0 + (PX1 - PX0) * (0.5 if n == 1 else i / (n - 1))

    def py(v: float) -> float:
        return PY1 - (PY1 - PY0) * v / top

    out = [f'<svg class="chart" data-series="{_e(actual)}" viewBox="0 0 {W} {H}" '
           f'width="{W}" height="{H}" role="img" aria-label="{_e(title)}">',
           f'<text class="title" x="{PX0}" y="18">{_e(title)}</text>']
    for k in range(round(top / step) + 1):
        v = k * step
        out.append(f'<line class="grid" x1="{PX0}" y1="{py(v):.1f}" x2="{PX1}" '
                   f'y2="{py(v):.1f}"/><text class="tick" x="{PX0 - 6}" y="{py(v) + 4:.1f}" '
                   f'text-anchor="end">{_e(axis_label(v, step))}</text>')
    step = max(1, n // 8)
    for i, r in enumerate(rows):
        if i % step == 0 or i == n - 1:
            out.append(f'<text class="tick" x="{px(i):.1f}" y="{PY1 + 16}" '
                       f'text-anchor="middle">{_e(r.date[:10])}</text>')
    targets = [(px(i), py(p[1])) for i, p in enumerate(points) if p[1] is not None]
    if targets:
        if len(targets) == 1:
            targets = [(PX0, targets[0][1]), (PX1, targets[0][1])]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in targets)
        out.append(f'<polyline class="objective" points="{path}"/>'
                   f'<text class="objective-label" x="{PX1}" y="{targets[-1][1] - 5:.1f}" '
                   f'text-anchor="end">objective</text>')
    series = [(px(i), py(p[0])) for i, p in enumerate(points) if p[0] is not None]
    if len(series) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in series)
        out.append(f'<polyline class="series" points="{path}"/>')
    for i, (value, _target, ok) in enumerate(points):
        if value is not None:
            out.append(f'<circle class="pt {_state(ok)}" cx="{px(i):.1f}" cy="{py(value):.1f}" '
                       f'r="4"><title>{_e(rows[i].run_id)}: {_e(data.secs(value))}'
                       f'</title></circle>')
    if not series:
        out.append(f'<text class="axis" x="{PX0 + 10}" y="{PY0 + 30}">not measured</text>')
    out.append("</svg>")
    return "".join(out)


def _table(rows: list[HistoryRow]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("date", "run", "mode", "RTO", "RTO objective",
                                             "RPO", "RPO objective", "lost writes",
                                             "status", "objectives"))
    body = "".join(
        f"<tr><td>{_e(r.date[:16].replace('T', ' '))}</td><td>{_e(r.run_id)}</td>"
        f"<td>{_e(r.mode)}</td>"
        f'<td class="num">{_e(data.secs(r.rto_s))}</td>'
        f'<td class="num">{_e(data.secs(r.rto_target_s))}</td>'
        f'<td class="num">{_e(data.secs(r.rpo_s))}</td>'
        f'<td class="num">{_e(data.secs(r.rpo_target_s))}</td>'
        f'<td class="num">{_e(data.text(r.lost_writes))}</td><td>{_e(r.status)}</td>'
        f'<td><span class="badge {_state(r.met)}">{_e(data.met_word(r.met).upper())}'
        f"</span></td></tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_history_html(rows: list[HistoryRow], title: str = "DR drill history") -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
             f'<h1>{_e(title)}</h1><p class="sub">{len(rows)} run(s), newest first. Trend '
             f'compares the latest RTO with the previous run of the same runbook.</p>']
    if not rows:
        parts.append('<p class="note">No runs with a readable record.json.</p>')
    for name, t in trend(rows).items():
        group = [r for r in rows if r.runbook == name]
        oldest_first = list(reversed(group))
        parts.append(
            f'<section class="runbook"><h2>{_e(name)}</h2><p>Trend: '
            f'<strong class="trend {_e(t.direction)}">{_e(t.direction)}</strong> · latest RTO '
            f'{_e(data.secs(t.latest_rto_s))}, previous {_e(data.secs(t.previous_rto_s))} · '
            f'<span class="spark">{_e(t.sparkline)}</span> · {t.runs} run(s)</p>'
            f'<div class="charts"><div class="panel">'
            f'{chart("RTO over time", oldest_first, "rto_s", "rto_target_s")}'
            f'</div><div class="panel">'
            f'{chart("RPO over time", oldest_first, "rpo_s", "rpo_target_s")}'
            f"</div></div>{_table(group)}</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
