"""The SVG timeline of a run: a Gantt of steps on a seconds-from-start axis, T0, service
restoration and the RTO deadline as vertical lines, the service probe's up/down band and the
canary's writes under it. Pure string building, no external reference of any kind.

Each step bar is ``<rect class="bar …" data-index data-start-s data-duration-s>`` with
``x = X0 + start_s * scale`` and ``width = duration_s * scale`` (``data-scale`` on the
``<svg>``), so tests and tools can read the picture back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from drdrill.events import Event
from drdrill.report import data
from drdrill.report.data import Record, StepView

WIDTH = 1200
X0 = 270  # left edge of the plot (labels to its left)
X1 = 1150
ROW = 26
BAR = 16
TOP = 56  # first step row
TICK_Y = 44
STATUS_CLASS = {"ok": "ok", "failed": "failed", "timeout": "failed", "skipped": "skipped",
                "aborted": "aborted"}
_NICE = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _f(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def tick_step(span: float) -> float:
    """A readable axis step giving at most ~12 ticks over ``span`` seconds."""
    for step in _NICE:
        if span / step <= 12:
            return float(step)
    return float(math.ceil(span / 12 / 3600) * 3600)


def axis_label(seconds: float, step: float) -> str:
    """Tick text: seconds while ticks are under a minute apart ("90s"), else "5m"/"1h05m"."""
    if step < 60:
        return f"{_f(seconds)}s"
    minutes = int(seconds // 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _attempt_spans(events: Sequence[Event]) -> list[tuple[int, str, float, float, int]]:
    """(index, phase, start, end, attempt) of every attempt that did not end ok and was
    retried (the last attempt's outcome is the bar's own colour)."""
    started: dict[tuple[int, str, int], float] = {}
    failed: list[tuple[int, str, float, float, int]] = []
    for e in events:
        if e.type not in ("step_started", "step_finished"):
            continue
        index, phase = int(e.data.get("index") or 0), str(e.data.get("phase") or "main")
        key = (index, phase, int(e.data.get("attempt") or 1))
        if e.type == "step_started":
            started[key] = e.mono
        elif key in started and e.data.get("status") != "ok":
            failed.append((index, phase, started[key], e.mono, key[2]))
    return [f for f in failed if (f[0], f[1], f[4] + 1) in started]


def render_timeline(record: Record, events: Sequence[Event]) -> str:
    steps = [s for s in data.steps(record) if s.start_s is not None]
    probes = data.probe_samples(record, events)
    canary = data.canary_marks(record, events)
    t0 = data.mark(record, "t0_mono", "t0")
    restored = data.mark(record, "service_restored_mono", "service_restored")
    rto_target = data.verdict(record).rto_target_s
    deadline = t0 + rto_target if t0 is not None and rto_target is not None else None
    ends = [s.end_s or s.start_s or 0.0 for s in steps] + [p[0] for p in probes]
    ends += [c.mono for c in canary] + [m for m in (t0, restored, deadline) if m is not None]
    span = max(ends + [1.0])
    step = tick_step(span)
    tmax = math.ceil(span * 1.02 / step) * step
    scale = (X1 - X0) / tmax

    def x(t: float) -> float:
        return X0 + t * scale

    band_y = TOP + len(steps) * ROW + 14
    canary_y = band_y + 30
    bottom = canary_y + 26
    height = bottom + 48
    out = [f'<svg class="timeline" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
           f'data-x0="{X0}" data-scale="{scale:.6f}" '
           f'aria-label="timeline of steps, service probe and canary writes">']
    out += [f'<rect class="row-bg" x="0" y="{TOP + i * ROW}" width="{WIDTH}" height="{ROW}"/>'
            for i in range(1, len(steps), 2)]
    out.append(_axis(tmax, step, x, bottom))
    if t0 is not None and restored is not None and restored > t0:
        v = data.verdict(record)
        word = _e(data.met_word(v.rto_met))
        out.append(f'<rect class="rto-window" x="{x(t0):.2f}" y="{TOP - 4}" '
                   f'width="{(restored - t0) * scale:.2f}" height="{bottom - TOP + 4}"/>'
                   f'<text class="rto-label {word}" x="{(x(t0) + x(restored)) / 2:.2f}" '
                   f'y="{bottom + 14}" text-anchor="middle">RTO {_e(data.secs(v.rto_s))} '
                   f'({word})</text>')
    for i, s in enumerate(steps):
        out.append(_step_row(s, TOP + i * ROW, x, scale, _checkpoints_at(record, s)))
    for index, phase, start, end, attempt in _attempt_spans(events):
        row = next((i for i, s in enumerate(steps) if s.index == index and s.phase == phase),
                   None)
        if row is not None:
            y = TOP + row * ROW + (ROW - BAR) / 2
            out.append(f'<rect class="attempt-failed" x="{x(start):.2f}" y="{y:.1f}" '
                       f'width="{max((end - start) * scale, 1):.2f}" height="{BAR}">'
                       f'<title>attempt {attempt} failed: {_f(start)}s to {_f(end)}s</title>'
                       f'</rect>')
    out.append(_band(probes, band_y, x, tmax))
    out.append(_canary(canary, canary_y, x))
    out.append(_markers(record, t0, restored, deadline, x, bottom))
    out.append(_legend(height - 10))
    out.append("</svg>")
    return "\n".join(out)


def _axis(tmax: float, step: float, x: Callable[[float], float], bottom: float) -> str:
    parts = [f'<text class="axis-title" x="{X0 - 24}" y="{TICK_Y}" text-anchor="end">'
             f'seconds from start</text>']
    t = 0.0
    while t <= tmax + 1e-9:
        px = x(t)
        parts.append(f'<line class="grid" x1="{px:.2f}" y1="{TOP - 4}" x2="{px:.2f}" '
                     f'y2="{bottom}"/><text class="tick" x="{px:.2f}" y="{TICK_Y}" '
                     f'text-anchor="middle">{_e(axis_label(t, step))}</text>')
        t += step
    return "".join(parts)


def _checkpoints_at(record: Record, s: StepView) -> list[str]:
    """Named checkpoints taken at this step's end (t0/service_restored have their lines)."""
    names = []
    for name, value in data.section(record, "checkpoint_offsets_s").items():
        t = data.num(value)
        if (t is not None and s.end_s is not None and abs(t - s.end_s) < 0.0015
                and name not in ("t0", "service_restored")):
            names.append(str(name))
    return names


def _step_row(s: StepView, y: float, x: Callable[[float], float], scale: float,
              checkpoints: list[str]) -> str:
    start = s.start_s or 0.0
    duration = s.duration_s or 0.0
    status = STATUS_CLASS.get(s.status, "other")
    kind = "manual" if s.manual else "automated"
    name = s.name if len(s.name) <= 34 else s.name[:33] + "…"
    phase = " (rollback)" if s.phase == "rollback" else ""
    by = f", acknowledged by {s.acknowledged_by}" if s.manual else ""
    group = f", parallel group {s.group}" if s.group else ""
    title = (f"{s.index}. {s.name}{phase}{group}: {s.status}, {data.secs(duration)}, "
             f"{kind}{by}, attempts {s.attempts if s.attempts is not None else data.NA}")
    bar_y = y + (ROW - BAR) / 2
    width = max(duration * scale, 2.0)  # an instant (skipped step) stays visible
    label_x = x(start) + max(width, 2) + 6
    note = data.secs(duration) + (f" · ×{s.attempts}" if (s.attempts or 1) > 1 else "")
    if s.manual:
        note += f" · manual ({s.acknowledged_by})"
    note += "".join(f" · ◆ {name}" for name in checkpoints)
    return (f'<text class="label" x="{X0 - 10}" y="{y + ROW / 2 + 4:.1f}" '
            f'text-anchor="end">{"∥ " if s.group else ""}{_e(s.index)}. {_e(name)}'
            f'{_e(phase)}</text>'
            f'<rect class="bar {status} {kind}" data-index="{_e(s.index)}" '
            f'data-phase="{_e(s.phase)}" data-group="{_e(s.group)}" '
            f'data-start-s="{start}" data-duration-s="{duration}" '
            f'x="{x(start):.2f}" y="{bar_y:.1f}" width="{width:.2f}" height="{BAR}" rx="2">'
            f'<title>{_e(title)}</title></rect>'
            f'<text class="note" x="{label_x:.2f}" y="{y + ROW / 2 + 4:.1f}">{_e(note)}</text>')


def _band(probes: list[tuple[float, bool]], y: float, x: Callable[[float], float],
          tmax: float) -> str:
    parts = [f'<text class="label" x="{X0 - 10}" y="{y + 13}" text-anchor="end">'
             f'service probe</text>']
    if not probes:
        parts.append(f'<text class="note" x="{X0}" y="{y + 13}">no probe results</text>')
    ordered = sorted(probes)
    for i, (t, ok) in enumerate(ordered):
        end = ordered[i + 1][0] if i + 1 < len(ordered) else min(t + 1.0, tmax)
        cls = "up" if ok else "down"
        parts.append(f'<rect class="probe {cls}" x="{x(t):.2f}" y="{y}" '
                     f'width="{max((end - t) * (x(1.0) - x(0.0)), 0.5):.2f}" height="18">'
                     f'<title>{_f(t)}s: {"up" if ok else "down"}</title></rect>')
    return "".join(parts)


def _canary(marks: list[data.CanaryMark], y: float, x: Callable[[float], float]) -> str:
    parts = [f'<text class="label" x="{X0 - 10}" y="{y + 14}" text-anchor="end">'
             f'canary writes</text>']
    if not marks:
        parts.append(f'<text class="note" x="{X0}" y="{y + 14}">no canary writes</text>')
    geometry = {"acked": (y + 6, y + 18), "failed": (y + 10, y + 18), "lost": (y, y + 22)}
    for m in sorted(marks, key=lambda m: m.state == "lost"):
        y1, y2 = geometry[m.state]
        parts.append(f'<line class="canary {m.state}" x1="{x(m.mono):.2f}" y1="{y1}" '
                     f'x2="{x(m.mono):.2f}" y2="{y2}"><title>write #{m.seq} at '
                     f'{_f(m.mono)}s: {m.state}</title></line>')
        if m.state == "lost":
            parts.append(f'<circle class="canary-lost-dot" cx="{x(m.mono):.2f}" cy="{y}" '
                         f'r="3"/>')
    return "".join(parts)


def _markers(record: Record, t0: float | None, restored: float | None,
             deadline: float | None, x: Callable[[float], float], bottom: float) -> str:
    parts = []
    offsets = data.section(record, "checkpoint_offsets_s")
    for name, value in offsets.items():
        t = data.num(value)
        if t is None or name in ("t0", "service_restored"):
            continue
        parts.append(f'<path class="checkpoint" d="M {x(t):.2f} {TOP - 1} l -4 -7 h 8 z">'
                     f'<title>checkpoint {_e(name)} at {_f(t)}s</title></path>')
    marks = [(t0, "t0", "T0"), (restored, "restored", "service restored"),
             (deadline, "deadline", "RTO deadline")]
    placed: list[float] = []
    for t, cls, label in marks:
        if t is None:
            continue
        px = x(t)
        line = 0 if all(abs(px - p) > 110 for p in placed) else 1
        placed.append(px)
        parts.append(f'<line class="marker {cls}" x1="{px:.2f}" y1="{18 + line * 13}" '
                     f'x2="{px:.2f}" y2="{bottom}"><title>{_e(label)} at {_f(t)}s</title>'
                     f'</line><text class="marker-label {cls}" x="{px + 4:.2f}" '
                     f'y="{16 + line * 13}">{_e(label)} {_e(_f(t))}s</text>')
    return "".join(parts)


def _legend(y: float) -> str:
    items = [("sw ok", "step ok"), ("sw failed", "step failed"), ("sw attempt", "failed attempt"),
             ("sw manual", "manual step"), ("sw up", "service up"), ("sw down", "service down"),
             ("sw acked", "write acknowledged"), ("sw lost", "acknowledged write lost")]
    parts, px = [], 20.0
    for cls, label in items:
        parts.append(f'<rect class="{cls}" x="{px:.0f}" y="{y - 9}" width="12" height="12"/>'
                     f'<text class="legend" x="{px + 16:.0f}" y="{y + 1}">{_e(label)}</text>')
        px += 30 + len(label) * 6.6
    return "".join(parts)
