"""One drill per environment: a lock keyed by the inventory and the runbook's environment,
so two drills cannot fail over the same servers at once. A lock left by a dead process
(same machine, pid gone) is taken over with a warning."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from drdrill.errors import BadInput
from drdrill.executors.inventory import Inventory
from drdrill.runbook.model import Runbook


def lock_dir() -> Path:
    env = os.environ.get("DRDRILL_LOCK_DIR")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "drdrill" / "locks"


def lock_key(runbook: Runbook, inventory: Inventory) -> str:
    hosts = ",".join(sorted(inventory.hosts))
    raw = f"{inventory.path.resolve()}|{hosts}|{runbook.environment}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _holder_alive(holder: dict[str, object]) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell for another machine: assume it is alive
    try:
        os.kill(int(str(holder.get("pid"))), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _try_create(path: Path, holder: dict[str, object]) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump(holder, fh)
    return True


@contextmanager
def environment_lock(runbook: Runbook, inventory: Inventory, run_id: str,
                     operator: str) -> Iterator[Path]:
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{lock_key(runbook, inventory)}.lock"
    holder: dict[str, object] = {
        "pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
        "operator": operator, "since": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "inventory": str(inventory.path), "runbook": runbook.name}
    if not _try_create(path, holder):
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            current = {}
        if _holder_alive(current):
            raise BadInput(
                f"another drill holds this environment: run {current.get('run_id')} by "
                f"{current.get('operator')} (pid {current.get('pid')} on {current.get('host')}, "
                f"since {current.get('since')})",
                hint=f"wait for it to finish, or remove {path} if you are sure it is dead")
        warnings.warn(f"taking over a stale lock of dead process {current.get('pid')} "
                      f"(run {current.get('run_id')})", stacklevel=2)
        path.unlink(missing_ok=True)
        if not _try_create(path, holder):
            raise BadInput(f"lost the race for the environment lock {path}")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
