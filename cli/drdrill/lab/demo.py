"""Where ``drdrill demo`` finds the failover drill and the lab's inventory: the current
directory (a checkout), else the checkout this package was installed from (editable)."""

from __future__ import annotations

from pathlib import Path

from drdrill.errors import BadInput

DEMO_RUNBOOK = Path("drills") / "postgres-failover.yml"
DEMO_INVENTORY = Path("inventory.example.yml")


def locate_demo_inputs(start: Path | None = None) -> tuple[Path, Path]:
    candidates = [start or Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in candidates:
        if (root / DEMO_RUNBOOK).is_file() and (root / DEMO_INVENTORY).is_file():
            return root / DEMO_RUNBOOK, root / DEMO_INVENTORY
    raise BadInput(f"cannot find {DEMO_RUNBOOK} and {DEMO_INVENTORY}",
                   hint="run drdrill demo from the drdrill checkout")
