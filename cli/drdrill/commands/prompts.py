"""Asking the person at the terminal: manual-step acknowledgements and go/no-go gates."""

from __future__ import annotations

import getpass
from contextlib import nullcontext

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm

from drdrill.runbook.model import Step
from drdrill.view.live import LiveView


class TerminalInteraction:
    """Prompts at the terminal; the live view (if any) is paused while a person answers."""

    def __init__(self, console: Console, operator: str | None,
                 view: LiveView | None = None) -> None:
        self.console = console
        self.operator = operator or getpass.getuser()
        self.view = view

    def _ask(self, headline: str, question: str, default: bool) -> bool:
        with self.view.paused() if self.view is not None else nullcontext():
            self.console.print(headline)
            return Confirm.ask(question, console=self.console, default=default)

    def acknowledge(self, step: Step) -> tuple[bool, str]:
        done = self._ask(f"\n[bold]MANUAL STEP[/bold] {escape(step.name)}: "
                         f"{escape(step.instruction or '')}", "Done?", True)
        return done, self.operator

    def gate(self, step: Step) -> tuple[bool, str]:
        go = self._ask(f"\n[bold yellow]GATE[/bold yellow] before step {escape(step.name)!r}",
                       "Go?", False)
        return go, self.operator

    def ask_took_effect(self, step: Step) -> bool:
        return self._ask(f"\n[bold]RESUME[/bold] step {escape(step.name)!r} was running when "
                         "drdrill died.", "Did it take effect (answer no to run it again)?",
                         False)
