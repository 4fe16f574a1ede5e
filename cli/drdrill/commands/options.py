"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def runs_dir_option(fn: F) -> F:
    return click.option(
        "--runs-dir", type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("DRDRILL_RUNS_DIR", "runs"),
        show_default="$DRDRILL_RUNS_DIR or ./runs",
        help="Where run directories live.")(fn)


def inventory_option(required: bool) -> Callable[[F], F]:
    return click.option("-i", "--inventory", "inventory",
                        type=click.Path(dir_okay=False, path_type=Path), required=required,
                        help="Ansible inventory mapping the runbook's roles to hosts.")


def extra_vars_option(fn: F) -> F:
    return click.option("-e", "extra", multiple=True, metavar="KEY=VALUE",
                        help="Extra variable, as for run (repeat); it may define a "
                             "{{ name }} endpoint.")(fn)


def parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-e KEY=VALUE`` pairs as a dict (the value may hold ``=``)."""
    from drdrill.errors import BadInput

    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"-e {pair!r}: expected KEY=VALUE")
        result[key.strip()] = value
    return result


def resolve_run_dir(run: str, runs_dir: Path) -> Path:
    """RUN is a run directory or a run id under ``runs_dir``."""
    from drdrill.errors import BadInput

    candidate = Path(run)
    if (candidate / "journal.jsonl").is_file():
        return candidate
    under = runs_dir / run
    if (under / "journal.jsonl").is_file():
        return under
    raise BadInput(f"{run}: no run directory with a journal.jsonl here or under {runs_dir}",
                   hint="give a run id from `drdrill history` or a path to a run directory")
