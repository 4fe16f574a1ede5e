"""The isolated clone of ``drdrill run --isolated`` in the lab (docs/isolated.md).

pg-clone.yml puts it in ``<lab_dir>/clone`` (inventory.example.yml's pg2-clone host) and the
run's teardown removes it. A run whose orchestrator was killed cannot tear down, so the lab
says so: ``lab status`` notes a clone (running or only its data), ``lab repair`` stops and
removes it, ``lab down`` stops it with the nodes (``--purge`` deletes it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from drdrill.lab.config import LabConfig
from drdrill.lab.node import Node, postmaster_pid
from drdrill.lab.osuser import OsUser

CLONE_DIR = "clone"
_PORT = re.compile(r"^\s*port\s*=\s*'?(\d+)'?", re.MULTILINE)


def clone_dir(lab_dir: Path) -> Path:
    return lab_dir / CLONE_DIR


def _port(data: Path) -> int | None:
    try:
        ports = _PORT.findall((data / "postgresql.auto.conf").read_text())
    except OSError:
        return None
    return int(ports[-1]) if ports else None


def clone_notes(lab_dir: Path) -> list[str]:
    """A line for ``lab status`` when an isolated clone (or what is left of one) exists."""
    data = clone_dir(lab_dir)
    if not data.exists():
        return []
    pid = postmaster_pid(data)
    port = _port(data)
    where = f"{data}" + (f", port {port}" if port else "")
    if pid is not None:
        return [f"isolated clone running ({where}, pid {pid}): a run --isolated is in "
                "progress, or its teardown never ran — drdrill lab repair removes it"]
    return [f"isolated clone left over ({where}, not running): drdrill lab repair "
            "removes it"]


def remove_clone(cfg: LabConfig, bin_dir: Path, user: OsUser,
                 say: Callable[[str], None]) -> None:
    """Stop the clone if it runs and delete its data dir and log (the lab's only copy of
    nothing: it was a throwaway copy of pg2)."""
    data = clone_dir(cfg.lab_dir)
    if not data.exists():
        return
    running = postmaster_pid(data) is not None
    if running:
        Node(CLONE_DIR, _port(data) or 0, data, cfg, bin_dir, user).stop("immediate")
    shutil.rmtree(data)
    log = cfg.lab_dir / f"{CLONE_DIR}.log"
    if log.exists():
        log.unlink()
    say(f"removed the isolated clone in {data}" + (" (stopped it first)" if running else ""))
