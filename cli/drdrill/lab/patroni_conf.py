"""What the Patroni lab runs with: its ports, its layout, each node's Patroni YAML and the
HAProxy configuration that routes clients by Patroni's REST health checks.

The timing settings are the drill's assumptions (drills/patroni-failover.yml, docs/patroni.md):
``ttl`` 10 s (the leader key's lease: a dead leader is noticed when it expires),
``loop_wait`` 1 s (how often each Patroni wakes up), ``retry_timeout`` 4 s (etcd and
PostgreSQL operations; Patroni requires loop_wait + 2 × retry_timeout ≤ ttl), and
``synchronous_mode`` (RPO 0: Patroni keeps the replica synchronous). HAProxy checks
each node's REST API every 500 ms and moves writes after one good check of the new leader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.lab.config import DB_SUPERUSER, LabConfig

PATRONI_NODES = ("pat1", "pat2")
SCOPE = "drdrill-lab"
TTL_S = 20  # Patroni raises anything lower to 20 (its minimum)
LOOP_WAIT_S = 1
RETRY_TIMEOUT_S = 4
HAPROXY_CHECK_INTER = "500ms"
DEFAULT_BASE_PORT = 54350  # 54351-54358 (plain lab 54321/54322, +10 restore; service 54340-2)


@dataclass(frozen=True)
class PatroniPorts:
    """PostgreSQL and REST port of each node, etcd's client/peer, HAProxy's two frontends."""

    pg: tuple[int, int]
    rest: tuple[int, int]
    etcd_client: int
    etcd_peer: int
    haproxy_primary: int  # writes: to the leader (REST /primary answers 200)
    haproxy_replicas: int  # reads: to running replicas (REST /replica)

    @classmethod
    def from_base(cls, base: int = DEFAULT_BASE_PORT) -> PatroniPorts:
        return cls((base + 1, base + 2), (base + 3, base + 4), base + 5, base + 6,
                   base + 7, base + 8)

    def listed(self) -> tuple[int, ...]:
        return (*self.pg, *self.rest, self.etcd_client, self.etcd_peer,
                self.haproxy_primary, self.haproxy_replicas)

    def to_json(self) -> dict[str, Any]:
        return {"pg": list(self.pg), "rest": list(self.rest), "etcd_client": self.etcd_client,
                "etcd_peer": self.etcd_peer, "haproxy_primary": self.haproxy_primary,
                "haproxy_replicas": self.haproxy_replicas}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PatroniPorts:
        return cls((int(data["pg"][0]), int(data["pg"][1])),
                   (int(data["rest"][0]), int(data["rest"][1])), int(data["etcd_client"]),
                   int(data["etcd_peer"]), int(data["haproxy_primary"]),
                   int(data["haproxy_replicas"]))


@dataclass(frozen=True)
class PatroniLab:
    """The Patroni part of a lab: everything under ``<lab_dir>/patroni``."""

    lab: LabConfig
    ports: PatroniPorts

    @property
    def host(self) -> str:
        return self.lab.host

    @property
    def dir(self) -> Path:
        return self.lab.lab_dir / "patroni"

    @property
    def run_dir(self) -> Path:
        """Pid files and PostgreSQL's unix sockets."""
        return self.dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.dir / "log"

    def index(self, node: str) -> int:
        return PATRONI_NODES.index(node)

    def data_dir(self, node: str) -> Path:
        return self.dir / node

    def conf_file(self, node: str) -> Path:
        return self.dir / f"{node}.yml"

    def pid_file(self, node: str) -> Path:
        return self.run_dir / f"{node}.pid"

    def log_file(self, node: str) -> Path:
        return self.log_dir / f"{node}.log"

    def pg_port(self, node: str) -> int:
        return self.ports.pg[self.index(node)]

    def rest_port(self, node: str) -> int:
        return self.ports.rest[self.index(node)]

    def rest_url(self, node: str) -> str:
        return f"http://{self.host}:{self.rest_port(node)}"

    @property
    def haproxy_socket(self) -> Path:
        return self.dir / "haproxy" / "admin.sock"

    def service_dsn(self, dbname: str) -> str:
        """What clients dial: HAProxy's write frontend (it follows the leader)."""
        return (f"host={self.host} port={self.ports.haproxy_primary} dbname={dbname} "
                f"user={DB_SUPERUSER} target_session_attrs=read-write connect_timeout=2")


HBA = [
    "local all all trust",
    "local replication all trust",
    "host all all 127.0.0.1/32 trust",
    "host replication all 127.0.0.1/32 trust",
]

PARAMETERS = {
    "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
    "max_wal_senders": 10, "max_replication_slots": 10, "wal_keep_size": "256MB",
    "max_connections": 60, "shared_buffers": "32MB", "hot_standby_feedback": "on",
    "wal_retrieve_retry_interval": "500ms", "log_line_prefix": "%m [%p] %q%a ",
}


def node_config(lab: PatroniLab, node: str, bin_dir: Path) -> dict[str, Any]:
    """The Patroni YAML of ``node`` (as a mapping). Trust auth on loopback, as in the lab."""
    user = {"username": DB_SUPERUSER}
    return {
        "scope": SCOPE, "namespace": "/drdrill/", "name": node,
        "restapi": {"listen": f"{lab.host}:{lab.rest_port(node)}",
                    "connect_address": f"{lab.host}:{lab.rest_port(node)}"},
        "etcd3": {"hosts": [f"{lab.host}:{lab.ports.etcd_client}"]},
        "bootstrap": {
            "dcs": {"ttl": TTL_S, "loop_wait": LOOP_WAIT_S, "retry_timeout": RETRY_TIMEOUT_S,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    # a commit is acknowledged once the replica has it, so a killed leader
                    # loses no acknowledged write (measured: async lost one in ~1000);
                    # not strict: a leader alone keeps taking writes
                    "synchronous_mode": True, "synchronous_mode_strict": False,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                   "parameters": PARAMETERS}},
            "initdb": [{"encoding": "UTF8"}, "no-locale"],
        },
        "postgresql": {
            "listen": f"{lab.host}:{lab.pg_port(node)}",
            "connect_address": f"{lab.host}:{lab.pg_port(node)}",
            "data_dir": str(lab.data_dir(node)), "bin_dir": str(bin_dir),
            "pgpass": str(lab.run_dir / f"{node}.pgpass"),
            # a replica's clone must not wait for a spread checkpoint (minutes when idle)
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {"superuser": user, "replication": user, "rewind": user},
            "parameters": {"unix_socket_directories": str(lab.run_dir)},
            "pg_hba": HBA,
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": False},
    }


def _backend(lab: PatroniLab, name: str, check: str) -> list[str]:
    lines = [f"backend {name}",
             f"    option httpchk GET {check}",
             "    http-check expect status 200",
             f"    default-server inter {HAPROXY_CHECK_INTER} fall 2 rise 1 "
             "on-marked-down shutdown-sessions"]
    lines += [f"    server {node} {lab.host}:{lab.pg_port(node)} check port "
              f"{lab.rest_port(node)}" for node in PATRONI_NODES]
    return [*lines, ""]


def haproxy_sections(lab: PatroniLab) -> str:
    """Frontends and backends: writes go to the node whose REST ``/primary`` answers 200
    (the leader), reads to those answering ``/replica``; a stats socket for ``lab status``."""
    lines = ["global", f"    stats socket {lab.haproxy_socket} mode 600 level admin", ""]
    for name, port, check in (("patroni_primary", lab.ports.haproxy_primary, "/primary"),
                              ("patroni_replicas", lab.ports.haproxy_replicas, "/replica")):
        lines += [f"frontend {name}", f"    bind {lab.host}:{port}",
                  f"    default_backend {name}", ""]
        lines += _backend(lab, name, check)
    return "\n".join(lines)
