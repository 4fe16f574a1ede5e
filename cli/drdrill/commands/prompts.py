"""Asking the person at the terminal: manual-step acknowledgements and go/no-go gates."""

from __future__ import annotations

import getpass

from rich.console import Console
from rich.prompt import Confirm

from drdrill.runbook.model import Step


class TerminalInteraction:
    def __init__(self, console: Console, operator: str | None) -> None:
        self.console = console
        self.operator = operator or getpass.getuser()

    def acknowledge(self, step: Step) -> tuple[bool, str]:
        self.console.print(f"\n[bold]MANUAL STEP[/bold] {step.name}: {step.instruction}")
        done = Confirm.ask("Done?", console=self.console, default=True)
        return done, self.operator

    def gate(self, step: Step) -> tuple[bool, str]:
        self.console.print(f"\n[bold yellow]GATE[/bold yellow] before step {step.name!r}")
        go = Confirm.ask("Go?", console=self.console, default=False)
        return go, self.operator

    def ask_took_effect(self, step: Step) -> bool:
        self.console.print(f"\n[bold]RESUME[/bold] step {step.name!r} was running when drdrill "
                           "died.")
        return Confirm.ask("Did it take effect (answer no to run it again)?",
                           console=self.console, default=False)
