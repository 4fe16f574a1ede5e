"""Helpers for tests that drive `drdrill` as a real process and interrupt it: start a run,
watch its journal grow, signal it at a chosen point, scan /proc for leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DRILLS = FIXTURES / "drills"
DRDRILL = str(Path(sys.executable).parent / "drdrill")

Lines = list[dict[str, Any]]
Trigger = Callable[[Lines], bool]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([DRDRILL, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def complete_lines(journal: Path) -> tuple[bytes, Lines]:
    """The bytes of the complete lines of a journal, and those lines parsed."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return b"", []
    data = data[:data.rfind(b"\n") + 1]
    return data, [json.loads(raw) for raw in data.splitlines()]


def run_dir_of(runs: Path) -> Path | None:
    found = [p for p in runs.iterdir() if p.is_dir()] if runs.is_dir() else []
    return found[0] if len(found) == 1 else None


def signal_when(proc: subprocess.Popen[str], runs: Path, trigger: Trigger,
                sig: int = signal.SIGKILL, deadline_s: float = 120) -> tuple[Path, Lines]:
    """Poll the run's journal every few ms; send ``sig`` once ``trigger(lines)`` is true.
    Returns the run directory and the complete lines seen when the signal was sent."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        run_dir = run_dir_of(runs)
        if run_dir is not None:
            _, lines = complete_lines(run_dir / "journal.jsonl")
            if lines and trigger(lines):
                proc.send_signal(sig)
                return run_dir, lines
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"drdrill ended (rc={proc.returncode}) before the trigger:"
                                 f"\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("trigger never fired")


def after_lines(k: int) -> Trigger:
    return lambda lines: len(lines) >= k


def after_event(type_: str, **match: Any) -> Trigger:
    """This event (with these data fields) is journaled. The poll sees it within a few ms,
    so the kill lands right after it, give or take a probe/canary line."""
    def trigger(lines: Lines) -> bool:
        return any(ln["type"] == type_ and all(ln.get("data", {}).get(k) == v
                                               for k, v in match.items())
                   for ln in lines)
    return trigger


def after_task(step: str, task_prefix: str) -> Trigger:
    """A playbook task of ``step`` has started (ansible is running it right now)."""
    def trigger(lines: Lines) -> bool:
        return any(ln["type"] == "task" and ln["data"].get("step") == step
                   and ln["data"].get("event") == "playbook_on_task_start"
                   and str(ln["data"].get("task", "")).startswith(task_prefix) for ln in lines)
    return trigger


def live_processes(*needles: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of live (non-zombie) processes whose command line has every needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if line and stat[stat.rfind(")") + 2] != "Z" and all(n in line for n in needles):
            found.append((int(entry.name), line))
    return found


def wait_gone(*needles: str, timeout_s: float = 5.0) -> list[tuple[int, str]]:
    """Leftover processes still alive after ``timeout_s`` (ending ones get a moment)."""
    end = time.monotonic() + timeout_s
    left = live_processes(*needles)
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = live_processes(*needles)
    return left
