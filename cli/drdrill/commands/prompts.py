"""Asking the person at the terminal: manual-step acknowledgements and go/no-go gates.

In a terminal the question is drawn inside the live view, which keeps ticking (timers,
canary counts) while the person types: keys are read one at a time (cbreak mode) and echoed
by the view itself, so the display is never stopped and restarted (which left duplicated
rows). Enter alone never answers; a manual step's timeout ends the wait as ``timeout``.
"""

from __future__ import annotations

import getpass
import os
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from drdrill.engine.context import Acknowledgment
from drdrill.runbook.durations import format_duration
from drdrill.runbook.model import Step
from drdrill.view.live import LiveView

ENTER_ALONE = "Enter alone does not answer: type y or n (then Enter)"
NOT_DONE_WARNING = ("not done: r = retry (ask again), s = skip (recorded as skipped: the "
                    "run goes on but cannot pass), a = abort (the run stops; rollback per "
                    "policy)")
_TICK_S = 0.1


@contextmanager
def no_echo(enabled: bool) -> Iterator[None]:
    """While the live view redraws itself, keys typed outside a prompt must not be echoed:
    an echoed newline moves the cursor under the display, which then leaves a copy of its
    rows behind. Restored on the way out, whatever happens."""
    fd = sys.stdin.fileno() if enabled else -1
    saved = termios.tcgetattr(fd) if enabled else None
    if saved is not None:
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    try:
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _LineReader:
    """Reads one line from the terminal with a deadline, drawing it through ``show``."""

    def __init__(self, show: Callable[[str], None] | None,
                 cancel: threading.Event | None) -> None:
        self.show = show  # None: the terminal echoes (plain output)
        self.cancel = cancel

    def read(self, deadline: float | None) -> str | None:
        """The typed line, or None at the deadline or on Ctrl-C (cancel)."""
        fd = sys.stdin.fileno()
        if self.show is None:
            return self._read_canonical(fd, deadline)
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            termios.tcflush(fd, termios.TCIFLUSH)  # keys typed before the question never answer it
            return self._read_keys(fd, deadline)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _wait(self, fd: int, deadline: float | None) -> bool | None:
        """True: input ready; None: stop waiting (deadline or cancel); False: keep going."""
        if self.cancel is not None and self.cancel.is_set():
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        ready, _, _ = select.select([fd], [], [], _TICK_S)
        return bool(ready)

    def _read_canonical(self, fd: int, deadline: float | None) -> str | None:
        while (ready := self._wait(fd, deadline)) is not None:
            if ready:
                return sys.stdin.readline().rstrip("\r\n")
        return None

    def _read_keys(self, fd: int, deadline: float | None) -> str | None:
        typed = ""
        assert self.show is not None
        self.show(typed)
        while (ready := self._wait(fd, deadline)) is not None:
            if not ready:
                continue
            char = os.read(fd, 1).decode("utf-8", "replace")
            if char in ("\r", "\n"):
                return typed
            if char in ("\x7f", "\x08"):
                typed = typed[:-1]
            elif char == "\x15":  # Ctrl-U
                typed = ""
            elif char.isprintable():
                typed += char
            self.show(typed)
        return None


class TerminalInteraction:
    """Prompts at the terminal, inside the live view when there is one."""

    def __init__(self, console: Console, operator: str | None,
                 view: LiveView | None = None, cancel: threading.Event | None = None) -> None:
        self.console = console
        self.operator = operator or getpass.getuser()
        self.view = view
        self.cancel = cancel

    def _ask(self, lines: list[str], question: str, deadline: float | None) -> str | None:
        """Show ``lines`` and ``question``; return the answer typed (stripped)."""
        view = self.view
        if view is not None and view.interactive:
            def show(typed: str) -> None:
                view.set_prompt((*lines, f"{question} {typed}_"))
            try:
                answer = _LineReader(show, self.cancel).read(deadline)
            finally:
                view.set_prompt(())
        else:
            for line in lines:
                self.console.print(line, markup=False, highlight=False)
            self.console.print(f"{question} ", end="", markup=False, highlight=False)
            answer = _LineReader(None, self.cancel).read(deadline)
        return None if answer is None else answer.strip()

    def _log(self, text: str) -> None:
        """One line above the live display (or in the plain output)."""
        self.console.print(text, markup=False, highlight=False)

    def _header(self, step: Step, timeout_s: float | None, started: float) -> list[str]:
        facts = []
        if step.owner:
            facts.append(f"owner: {step.owner}")
        if step.expected_s is not None:
            facts.append(f"expected: {format_duration(step.expected_s)}")
        if timeout_s is not None:  # a fixed instant: the line is not redrawn every tick
            at = time.time() + max(0.0, started + timeout_s - time.monotonic())
            facts.append(f"escalates at {time.strftime('%H:%M:%S', time.gmtime(at))} UTC")
        extra = f" ({', '.join(facts)})" if facts else ""
        return [f"MANUAL STEP {step.name}{extra}", f"  {step.instruction or ''}"]

    def acknowledge(self, step: Step, timeout_s: float | None) -> Acknowledgment:
        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        comments: list[str] = []
        hint = ""
        while True:
            lines = self._header(step, timeout_s, started) + ([f"  {hint}"] if hint else [])
            answer = self._ask(lines, "Done? [y/n/comment]", deadline)
            if answer is None:
                choice = "abort" if self.cancel is not None and self.cancel.is_set() \
                    else "timeout"
                return self._ack(step, choice, comments)
            word, _, rest = answer.partition(" ")
            if not answer:
                hint = ENTER_ALONE + ", or a comment"
            elif word.lower() in ("y", "yes"):
                return self._ack(step, "done", comments + ([rest.strip()] if rest else []))
            elif word.lower() in ("n", "no"):
                choice = self._not_done(step, deadline)
                if choice in ("skip", "abort", "timeout"):
                    return self._ack(step, choice, comments + ([rest.strip()] if rest else []))
                hint = "asked again (retry)"
            else:
                comments.append(answer)
                self._log(f"comment on {step.name!r} by {self.operator}: {answer}")
                hint = "comment recorded; type y when done"

    def _not_done(self, step: Step, deadline: float | None) -> str:
        hint = ""
        while True:
            lines = [f"MANUAL STEP {step.name} not done", f"  WARNING: {NOT_DONE_WARNING}"]
            answer = self._ask(lines + ([f"  {hint}"] if hint else []),
                               "[r]etry / [s]kip / [a]bort?", deadline)
            if answer is None:
                return "abort" if self.cancel is not None and self.cancel.is_set() \
                    else "timeout"
            choice = {"r": "retry", "retry": "retry", "s": "skip", "skip": "skip",
                      "a": "abort", "abort": "abort"}.get(answer.lower())
            if choice is not None:
                return choice
            hint = "type r, s or a (then Enter)"

    def _ack(self, step: Step, choice: str, comments: list[str]) -> Acknowledgment:
        ack = Acknowledgment(choice, self.operator, time.time(), "; ".join(comments))
        words = {"done": "acknowledged", "skip": "skipped", "abort": "aborted",
                 "timeout": "NOT acknowledged before its timeout (escalated)"}[choice]
        self._log(f"manual step {step.name!r} {words} by {ack.by}"
                  + (f" — {ack.comment}" if ack.comment else ""))
        return ack

    def _yes_no(self, lines: list[str], question: str) -> bool:
        hint = ""
        while True:
            answer = self._ask(lines + ([f"  {hint}"] if hint else []), question, None)
            if answer is None:
                return False  # Ctrl-C: the safe answer
            if answer.lower() in ("y", "yes", "n", "no"):
                return answer.lower().startswith("y")
            hint = ENTER_ALONE

    def gate(self, step: Step) -> tuple[bool, str]:
        go = self._yes_no([f"GATE before step {step.name!r}"], "Go? [y/n]")
        self._log(f"gate before {step.name!r}: {'go' if go else 'no-go'} by {self.operator}")
        return go, self.operator

    def ask_took_effect(self, step: Step) -> bool:
        return self._yes_no([f"RESUME step {step.name!r} was running when drdrill "
                             "died."], "Did it take effect (answer n to run it again)? [y/n]")
