"""Lab configuration, the on-disk layout of a lab directory, and the status data types."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PRIMARY_PORT = 54321
STANDBY_PORT = 54322
LAB_DB = "drdrill"
DB_SUPERUSER = "postgres"
# The two lab nodes. pg1 is created as the primary, pg2 as its streaming standby; after a
# failover their roles may be swapped, but names, ports and data dirs stay with the node.
NODE_NAMES = ("pg1", "pg2")
Say = Callable[[str], None]  # how a repair reports each action, in order, as a sentence


def default_lab_dir() -> Path:
    """``$DRDRILL_LAB_DIR``, else ``${XDG_STATE_HOME:-~/.local/state}/drdrill/lab``.

    ``inventory.example.yml`` computes the same path with lookups of the same variables.
    """
    explicit = os.environ.get("DRDRILL_LAB_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "drdrill" / "lab"


@dataclass(frozen=True)
class LabConfig:
    lab_dir: Path = field(default_factory=default_lab_dir)
    primary_port: int = PRIMARY_PORT
    standby_port: int = STANDBY_PORT
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lab_dir", Path(self.lab_dir).expanduser().absolute())

    def port_of(self, node: str) -> int:
        return self.primary_port if node == NODE_NAMES[0] else self.standby_port

    def data_dir(self, node: str) -> Path:
        return self.lab_dir / node

    @property
    def env_file(self) -> Path:
        """``lab.env.json``: what the inventory reads (bin dir, OS user, ports, data dirs)."""
        return self.lab_dir / "lab.env.json"

    @property
    def archive_dir(self) -> Path:
        return self.lab_dir / "archive"

    @property
    def backup_dir(self) -> Path:
        return self.lab_dir / "basebackup"

    @property
    def socket_dir(self) -> Path:
        return self.lab_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.lab_dir / "log"

    def log_file(self, node: str) -> Path:
        return self.log_dir / f"{node}.log"


@dataclass(frozen=True)
class NodeStatus:
    """One lab node as seen right now. ``role`` is primary, standby or down."""

    name: str
    role: str
    port: int
    pid: int | None
    data_dir: Path
    replication: str = ""  # standby: its WAL receiver status; primary: "streaming to pg2"...
    upstream_port: int | None = None  # standby: the port it streams from
    lag_bytes: int | None = None  # standby: bytes of WAL the primary has that it has not replayed
    detail: str = ""


@dataclass(frozen=True)
class LabStatus:
    lab_dir: Path
    nodes: tuple[NodeStatus, ...]
    bin_dir: Path | None = None
    os_user: str = ""
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> NodeStatus | None:
        return next((n for n in self.nodes if n.role == "primary"), None)

    @property
    def standbys(self) -> tuple[NodeStatus, ...]:
        return tuple(n for n in self.nodes if n.role == "standby")

    @property
    def healthy(self) -> bool:
        """One primary and every other node a standby streaming from it."""
        primary = self.primary
        return primary is not None and all(
            n.role == "standby" and n.replication == "streaming"
            and n.upstream_port == primary.port
            for n in self.nodes if n is not primary)

    @property
    def swapped(self) -> bool:
        """True when pg1 (created as the primary) is not the primary now."""
        primary = self.primary
        return primary is not None and primary.name != NODE_NAMES[0]

    def to_json(self) -> dict[str, object]:
        return {
            "lab_dir": str(self.lab_dir),
            "bin_dir": str(self.bin_dir) if self.bin_dir else None,
            "os_user": self.os_user,
            "healthy": self.healthy,
            "swapped": self.swapped,
            "notes": list(self.notes),
            "nodes": [{"name": n.name, "role": n.role, "port": n.port, "pid": n.pid,
                       "data_dir": str(n.data_dir), "replication": n.replication,
                       "upstream_port": n.upstream_port, "lag_bytes": n.lag_bytes,
                       "detail": n.detail} for n in self.nodes],
        }
