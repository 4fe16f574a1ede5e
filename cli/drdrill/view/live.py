"""The live view: an event handler drawing the run as it happens (rich), or plain lines
when the output is not a terminal (CI logs). It never blocks the engine: ``handle`` only
updates state; rich's Live refreshes on its own thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from drdrill.events import Event
from drdrill.runbook.durations import format_duration

_STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "red", "aborted": "yellow",
                 "running": "cyan", "skipped": "dim", "pending": "dim"}


@dataclass
class _StepRow:
    name: str
    kind: str
    hosts: str
    status: str = "pending"
    started: float | None = None
    duration: float | None = None
    attempts: int = 0


@dataclass
class ViewState:
    rto_s: float = 0.0
    rows: dict[tuple[str, int], _StepRow] = field(default_factory=dict)
    t0_mono: float | None = None
    t0_local: float | None = None
    checkpoint: str = "-"
    service_ok: bool | None = None
    acked: int = 0
    unacked: int = 0
    restored_after: float | None = None  # seconds from T0 to the first pass after it
    recovering: bool = False
    prompt: tuple[str, ...] = ()  # a question drawn inside the live display, last line typed
    stopping: str = ""  # set at the Ctrl-C itself, before the engine gets to it


class LiveView:
    """Use as a context manager around the run; register it as an event handler."""

    def __init__(self, console: Console, plain: bool) -> None:
        self.console = console
        self.plain = plain
        self.state = ViewState()
        self._live: Live | None = None
        self._origin_local = time.monotonic()

    def __enter__(self) -> LiveView:
        if not self.plain:
            self._live = Live(console=self.console, refresh_per_second=8, transient=False,
                              get_renderable=self._render)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    @property
    def interactive(self) -> bool:
        """Whether the display redraws itself (a terminal), so prompts can live inside it."""
        return self._live is not None

    def set_prompt(self, lines: tuple[str, ...]) -> None:
        """Show a question below the table; the display keeps ticking while it waits."""
        self.state.prompt = lines

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while a person is asked something, then resume."""
        if self._live is None:
            yield
            return
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def interrupted(self, hard: bool) -> None:
        """Called from the signal handler: say at once that the Ctrl-C was seen (the step's
        cancellation and the rollback's first event can take seconds)."""
        running = [r.name for r in self.state.rows.values() if r.status == "running"]
        what = ("cancelling " + ("step " if len(running) == 1 else "steps ")  # a group: all
                + ", ".join(repr(n) for n in running)) if running else "cancelling"
        self.state.stopping = ("stopping now: the rollback is cancelled too" if hard else
                               f"stopping: {what}, then rollback… (Ctrl-C again: stop the "
                               "rollback too)")
        if self.plain:
            self.console.print(self.state.stopping, markup=False, highlight=False)

    def handle(self, event: Event) -> None:
        before = self.state.service_ok
        self._update(event)
        if self.plain:
            line = _plain_line(event)
            if event.type == "probe" and self.state.service_ok != before:
                line = "service " + ("UP" if self.state.service_ok else
                                     f"DOWN ({event.data.get('detail', '')})")
            if line:
                self.console.print(f"{event.wall[11:23]} {line}", markup=False, highlight=False,
                                   soft_wrap=True)

    def _update(self, event: Event) -> None:
        s, d = self.state, event.data
        key = (str(d.get("phase", "main")), int(d.get("index", 0)))
        if event.type == "run_started":
            s.rto_s = float(d.get("objectives", {}).get("rto_s", 0))
            for item in d.get("plan", []):
                s.rows[("main", item["index"])] = _StepRow(
                    item["name"], item["kind"], ",".join(item.get("hosts", [])))
        elif event.type == "step_started":
            row = s.rows.setdefault(key, _StepRow(str(d.get("name")), str(d.get("kind")),
                                                  ",".join(d.get("hosts", []))))
            row.status, row.attempts = "running", int(d.get("attempt", 1))
            row.started = time.monotonic()
        elif event.type == "step_finished" and key in s.rows:
            row = s.rows[key]
            row.status = str(d.get("status"))
            row.duration = time.monotonic() - row.started if row.started else 0.0
        elif event.type == "recovery_started":
            s.recovering = True
        elif event.type == "checkpoint":
            s.checkpoint = str(d.get("name"))
        elif event.type == "t0":
            s.t0_mono, s.t0_local = event.mono, time.monotonic()
        elif event.type == "probe":
            s.service_ok = bool(d.get("ok"))
            if (s.t0_mono is not None and s.recovering and s.service_ok
                    and s.restored_after is None):
                s.restored_after = event.mono - s.t0_mono
        elif event.type == "canary_write":
            if d.get("acked"):
                s.acked += 1
            else:
                s.unacked += 1

    def _render(self) -> Group:
        s = self.state
        table = Table(expand=False, box=None, padding=(0, 1))
        for col in ("#", "step", "kind", "hosts", "status", "time"):
            table.add_column(col)
        for (phase, index), row in s.rows.items():
            elapsed = row.duration if row.duration is not None else (
                time.monotonic() - row.started if row.started else None)
            label = f"{index}" if phase == "main" else f"R{index}"
            status = row.status + (f" (x{row.attempts})" if row.attempts > 1 else "")
            table.add_row(label, row.name, row.kind, row.hosts,
                          Text(status, style=_STATUS_STYLE.get(row.status, "")),
                          format_duration(elapsed) if elapsed is not None else "")
        prompt = [Text(line, style="bold") for line in s.prompt]
        stopping = [Text(s.stopping, style="bold yellow")] if s.stopping else []
        return Group(table, self._status_line(), *stopping, *prompt)

    def _status_line(self) -> Group:
        s = self.state
        service = {None: Text("service ?", "dim"), True: Text("service UP", "green"),
                   False: Text("service DOWN", "bold red")}[s.service_ok]
        info = Text.assemble(service, f"   checkpoint: {s.checkpoint}   canary acked "
                             f"{s.acked}, unacknowledged {s.unacked}")
        if s.t0_local is None or s.rto_s <= 0:
            return Group(info)
        spent = (s.restored_after if s.restored_after is not None
                 else time.monotonic() - s.t0_local)
        bar = ProgressBar(total=s.rto_s, completed=min(spent, s.rto_s), width=40,
                          complete_style="red" if spent > s.rto_s else "yellow")
        state = "service restored after" if s.restored_after is not None else "RTO budget:"
        label = Text(f"{state} {format_duration(spent)} of {format_duration(s.rto_s)} since T0")
        return Group(info, label, bar)


def _plain_line(event: Event) -> str | None:
    d: dict[str, Any] = dict(event.data)
    phase = "rollback " if d.get("phase") == "rollback" else ""
    if event.type == "run_started":
        return f"run {d['run_id']} started ({d['mode']}, runbook {d['runbook']['name']})"
    if event.type == "step_started":
        hosts = ",".join(d.get("hosts", []))
        return (f"{phase}step {d['index']} {d['name']!r} started (attempt {d['attempt']})"
                + (f" on {hosts}" if hosts else "")
                + (f" [parallel: {d['group']}]" if d.get("group") else ""))
    if event.type == "step_finished":
        err = f": {d['error']}" if d.get("error") else ""
        return f"{phase}step {d['index']} {d['name']!r} {d['status']}{err}"
    if event.type == "checkpoint":
        return f"checkpoint {d['name']}"
    if event.type == "t0":
        return f"T0 ({d['source']})"
    if event.type in ("rollback_started", "rollback_finished", "gate", "step_retry",
                      "gate_waiting", "manual_overdue", "notify_message", "notify_gave_up"):
        return f"{event.type.replace('_', ' ')}: {_plain_data(d)}"
    return None


def _plain_data(d: dict[str, Any]) -> str:
    """An event's data as text for a person (never a Python dict repr): the reason or the
    status alone when that is all there is, else key=value pairs."""
    for key in ("reason", "status", "text"):
        if key in d and len(d) == 1:
            return str(d[key])
    return ", ".join(f"{k}={v}" for k, v in d.items() if v is not None and v != "")
