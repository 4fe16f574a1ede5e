"""Keep the runbook, the playbooks and the inventory exactly as run inside the run
directory (``runbook/``), so evidence bundles and resume use what actually ran."""

from __future__ import annotations

import shutil
from pathlib import Path

from drdrill.executors.inventory import Inventory
from drdrill.runbook.model import Runbook, StepKind


def snapshot_inputs(runbook: Runbook, inventory: Inventory, run_dir: Path) -> Path:
    target = run_dir / "runbook"
    (target / "playbooks").mkdir(parents=True, exist_ok=True)
    shutil.copy2(runbook.path, target / runbook.path.name)
    shutil.copy2(inventory.path, target / ("inventory" + inventory.path.suffix))
    for step in runbook.steps + runbook.rollback:
        if step.kind is StepKind.PLAYBOOK and step.playbook:
            source = runbook.playbook_dir / step.playbook
            dest = target / "playbooks" / step.playbook
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_file():
                shutil.copy2(source, dest)
    return target
