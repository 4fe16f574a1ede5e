"""Safety gates checked before anything runs."""

from __future__ import annotations

from drdrill.errors import Aborted, BadInput
from drdrill.executors.inventory import Inventory
from drdrill.runbook.model import Runbook


def environment_of(runbook: Runbook, inventory: Inventory) -> str:
    """Production wins: if either the runbook or the inventory says production, it is."""
    names = {runbook.environment, inventory.environment or runbook.environment}
    return "production" if "production" in names else runbook.environment


def check_can_run(runbook: Runbook, inventory: Inventory, confirm: str | None,
                  yes: bool) -> None:
    """Refuse a production run unless the operator typed the environment's name."""
    env = environment_of(runbook, inventory)
    if env == "production" and confirm != env:
        raise Aborted(
            "refusing to run against production without confirmation",
            hint="pass --confirm production (typing the environment name); --yes never "
                 "confirms production")


def check_auto_answer(runbook: Runbook, inventory: Inventory) -> None:
    """``--yes`` answers gates go in drill/test environments only, never in production."""
    if environment_of(runbook, inventory) == "production" and any(
            s.gate for s in runbook.steps + runbook.rollback):
        raise BadInput(
            "this production runbook has go/no-go gates and --yes never answers them",
            hint="run it in a terminal without --yes, so a person answers each gate")
