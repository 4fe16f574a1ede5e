"""The manual-step and gate prompts in a real terminal: ``drdrill run`` inside tmux, keys sent
with ``send-keys``, the screen read with ``capture-pane``.

Checks what a person sees: Enter alone does not acknowledge, ``n`` offers retry / skip /
abort with a warning, a comment is recorded, ``y`` acknowledges; the live view keeps
ticking while the prompt waits, and no step row is left duplicated on the screen.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("tmux") is None,
                                 reason="tmux is not installed (apt-get install tmux)")]
ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "tests" / "fixtures" / "drills" / "manual-timed.yml"
DRDRILL = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "drdrill"
MANUAL_ROW = re.compile(r"^\s*2\s+call the bank\s+manual\s")
HEADER_ROW = re.compile(r"^\s*#\s+step\s+kind\s+hosts\s+status\s+time")


class Pane:
    def __init__(self, name: str) -> None:
        self.name = name

    def screen(self, history: bool = False) -> str:
        args = ["tmux", "capture-pane", "-p", "-t", self.name] + (["-S", "-"] if history
                                                                 else [])
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def send(self, keys: str) -> None:
        if keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", keys], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)


@pytest.fixture()
def pane(tmp_path: Path) -> Iterator[Pane]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  vars: {ansible_connection: local}\n  hosts: {localhost: {}}\n")
    env = (f"DRDRILL_LOCK_DIR={tmp_path / 'lock'} DRDRILL_RUNS_DIR={tmp_path / 'runs'} "
           "TERM=xterm-256color")
    command = (f"cd {shlex.quote(str(tmp_path))} && env {env} {shlex.quote(str(DRDRILL))} run "
               f"{shlex.quote(str(RUNBOOK))} -i inventory.yml --operator alice; "
               "echo EXIT=$?; sleep 600")
    name = f"drdrill-prompt-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "50",
                    command], check=True)
    try:
        yield Pane(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)


def _elapsed(screen: str) -> float:
    row = next(line for line in screen.splitlines() if MANUAL_ROW.match(line))
    return float(row.split()[-1].rstrip("s"))


def _acked(screen: str) -> int:
    match = re.search(r"canary acked (\d+)", screen)
    assert match, screen
    return int(match.group(1))


def test_prompts_in_a_real_terminal(pane: Pane, tmp_path: Path) -> None:
    screen = pane.wait_for("warm up")
    assert "Done?" not in screen
    pane.send("y")  # typed ahead, before the question: must neither echo nor answer it
    first = pane.wait_for("Done? [y/n/comment]")
    assert "owner: duty manager" in first and "expected: 30.000s" in first
    time.sleep(1.0)
    later = pane.screen()
    # the view keeps ticking during the prompt: the step timer and the canary count move
    assert _elapsed(later) >= _elapsed(first) + 0.5
    assert _acked(later) > _acked(first)

    pane.send("")  # Enter alone
    screen = pane.wait_for("Enter alone does not answer")
    assert "Done? [y/n/comment]" in screen and "running" in screen

    pane.send("n")
    screen = pane.wait_for("[r]etry / [s]kip / [a]bort?")
    assert "WARNING" in screen and "cannot pass" in screen and "rollback" in screen
    pane.send("r")
    pane.wait_for("asked again (retry)")

    pane.send("called Bob at the duty desk")
    pane.wait_for("comment recorded")
    pane.send("y")
    screen = pane.wait_for("Go? [y/n]")
    assert "acknowledged by alice" in screen
    pane.send("")
    pane.wait_for("Enter alone does not answer: type y or n")
    pane.send("y")
    final = pane.wait_for("EXIT=")
    assert "EXIT=0" in final and "PASSED" in final

    history = pane.screen(history=True).splitlines()
    assert sum(1 for line in history if MANUAL_ROW.match(line)) == 1, "\n".join(history)
    assert sum(1 for line in history if HEADER_ROW.match(line)) == 1, "\n".join(history)
    record = json.loads(next((tmp_path / "runs").glob("*/record.json")).read_text())
    manual = next(s for s in record["steps"] if s["name"] == "call the bank")["manual"]
    assert manual["acknowledged_by"] == "alice" and manual["choice"] == "done"
    assert manual["comment"] == "called Bob at the duty desk" and manual["auto"] is False
    events = [json.loads(line) for line in
              next((tmp_path / "runs").glob("*/journal.jsonl")).read_text().splitlines()]
    waits = [e["data"]["what"] for e in events if e["type"] == "gate_waiting"]
    assert waits == ["manual step", "gate before"]
