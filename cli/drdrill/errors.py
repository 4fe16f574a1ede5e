"""One exception hierarchy; each error carries the exit status the CLI maps it to.

Core code raises these and never exits the process; the CLI catches them once.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_MISSED = 1
EXIT_BAD_INPUT = 2
EXIT_ABORTED = 3
EXIT_BUG = 70  # drdrill's own bug (sysexits EX_SOFTWARE), never the user's bad input
ERROR_FILE = "error.txt"  # a run's traceback when drdrill itself failed


class DrdrillError(Exception):
    """Base of every error drdrill reports to a user; ``exit_code`` is the process status."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BadInput(DrdrillError):
    """Runbook, inventory or arguments are wrong; nothing was executed (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class ValidationFailed(BadInput):
    """A runbook failed validation; ``problems`` holds every located problem, not just one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Aborted(DrdrillError):
    """The run was aborted by the operator, a failure policy or a safety gate (exit 3)."""

    exit_code = EXIT_ABORTED


class LabError(DrdrillError):
    """The embedded lab could not be started, inspected or stopped."""

    exit_code = EXIT_BAD_INPUT
