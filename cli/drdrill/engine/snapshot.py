"""Keep the runbook, the inventory and the WHOLE playbook directory exactly as run inside
the run directory (``runbook/``), so resume runs what actually ran and the evidence bundle
carries it.

Steps name one playbook each, but a playbook uses more than itself (``vars_files``,
``include_tasks``, roles, templates, files): copying only the named files made every
re-run step fail on resume. So the whole playbook directory is copied, and the
inventory's ``group_vars``/``host_vars`` beside it. A per-file SHA-256 manifest of the
copy is journaled (``inputs_snapshot``) before the first step, which puts the inputs under
the journal's hash chain: ``drdrill verify`` and resume check the copy against it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.executors.inventory import Inventory
from drdrill.journal.verify import SNAPSHOT_DIR, manifest_digest
from drdrill.runbook.model import Runbook

INVENTORY_DIRS = ("group_vars", "host_vars")  # Ansible reads them beside the inventory
_IGNORED_DIRS = {"__pycache__", ".git"}


@dataclass(frozen=True)
class Snapshot:
    """What was copied: {path under the run dir: sha256}, and what was left out (why)."""

    files: tuple[tuple[str, str], ...]
    skipped: tuple[str, ...]
    size: int

    def event_data(self) -> dict[str, Any]:
        files = dict(self.files)
        return {"dir": SNAPSHOT_DIR, "files": files, "digest": manifest_digest(files),
                "bytes": self.size, "skipped": list(self.skipped)}


def snapshot_inputs(runbook: Runbook, inventory: Inventory, run_dir: Path) -> Snapshot:
    """Copy the inputs under ``run_dir/runbook/`` and return their manifest."""
    target = run_dir / SNAPSHOT_DIR
    target.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    shutil.copy2(runbook.path, target / runbook.path.name)
    shutil.copy2(inventory.path, target / ("inventory" + inventory.path.suffix))
    for name in INVENTORY_DIRS:
        beside = inventory.path.parent / name
        if beside.is_dir():
            _copy_tree(beside, target / name, run_dir, skipped)
    if runbook.playbook_dir.is_dir():
        _copy_tree(runbook.playbook_dir, target / "playbooks", run_dir, skipped)
    else:
        (target / "playbooks").mkdir(exist_ok=True)
        skipped.append(f"{runbook.playbook_dir}: playbook directory not found")
    return _manifest(run_dir, skipped)


def _copy_tree(source: Path, dest: Path, run_dir: Path, skipped: list[str]) -> None:
    """Copy regular files (a symlinked file as its content). Symlinked directories are not
    followed (a loop or a link to / would copy the world) and the run directory itself is
    never copied into itself: both are listed in ``skipped``."""
    own = run_dir.resolve()
    for root, dirs, names in os.walk(source):
        here = Path(root)
        for name in list(dirs):
            path = here / name
            if name in _IGNORED_DIRS:
                dirs.remove(name)
            elif path.is_symlink():
                dirs.remove(name)
                skipped.append(f"{path}: symbolic link to a directory, not copied")
            elif own.is_relative_to(path.resolve()):
                dirs.remove(name)
                skipped.append(f"{path}: holds this run's directory, not copied")
        for name in names:
            path = here / name
            out = dest / path.relative_to(source)
            if not path.is_file():  # a dangling link, a socket, a fifo
                skipped.append(f"{path}: not a regular file, not copied")
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def _manifest(run_dir: Path, skipped: list[str]) -> Snapshot:
    files = []
    size = 0
    for path in sorted((run_dir / SNAPSHOT_DIR).rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            size += len(data)
            files.append((path.relative_to(run_dir).as_posix(),
                          hashlib.sha256(data).hexdigest()))
    return Snapshot(tuple(files), tuple(skipped), size)


def inventory_unchanged(original: Path, run_dir: Path) -> bool:
    """Is the inventory at ``original`` (with its group_vars/host_vars) byte for byte the
    one in the snapshot? Resume then uses it in place, where paths relative to it resolve;
    otherwise the snapshot's copy, which is what ran."""
    target = run_dir / SNAPSHOT_DIR
    copy = target / ("inventory" + original.suffix)
    if not (original.is_file() and copy.is_file()) or original.read_bytes() != copy.read_bytes():
        return False
    return all(_files(original.parent / name) == _files(target / name)
               for name in INVENTORY_DIRS)


def _files(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part in _IGNORED_DIRS for part in p.parts)}
