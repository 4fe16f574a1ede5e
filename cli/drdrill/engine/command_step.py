"""The engine side of ``command:`` steps: build the request from the run, then run it
(executors/command.py). Imported only when a command step runs, so runbooks without one
never load the SSH stack for it."""

from __future__ import annotations

import threading

from drdrill.engine.context import RunContext
from drdrill.executors.base import StepOutcome
from drdrill.runbook.model import Step


def run_command(ctx: RunContext, step: Step, attempt: int, cancel: threading.Event,
                phase: str) -> StepOutcome:
    from drdrill.executors.command import CommandRequest, run_command_step

    phase_dir = "rollback" if phase == "rollback" else "steps"
    variables = {**ctx.extra_vars, **step.vars, "drdrill_step": step.name}
    return run_command_step(CommandRequest(
        step=step, hosts=ctx.hosts_for(step), inventory=ctx.inventory, variables=variables,
        secret_vars=ctx.secret_vars,
        step_dir=ctx.run_dir / phase_dir / f"{step.index}-{step.slug}" / f"attempt-{attempt}",
        timeout_s=step.timeout_s, cancel=cancel, emit=ctx.emit, pool=ctx.ssh_pool))
