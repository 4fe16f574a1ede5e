"""The Patroni lab as Patroni sees it (REST ``/cluster``), plus what HAProxy routes to and
which daemons run — ``drdrill lab status``'s Patroni part. Never raises."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from drdrill.lab.config import LAB_DB
from drdrill.lab.etcd import Etcd
from drdrill.lab.haproxy import Haproxy
from drdrill.lab.node import postmaster_pid
from drdrill.lab.patroni_conf import (
    LOOP_WAIT_S,
    PATRONI_NODES,
    RETRY_TIMEOUT_S,
    TTL_S,
    PatroniLab,
)
from drdrill.lab.process import read_pid


@dataclass(frozen=True)
class PatroniMember:
    """One node: Patroni's view (role leader/replica/sync_standby, state running/streaming…),
    and whether its Patroni and PostgreSQL processes run here."""

    name: str
    role: str
    state: str
    pg_port: int
    rest_url: str
    timeline: int | None = None
    lag_bytes: int | None = None  # replicas: bytes behind the leader, per Patroni
    patroni_pid: int | None = None
    postmaster_pid: int | None = None
    routed: str = ""  # HAProxy server state in the write backend: UP / DOWN / ""


@dataclass(frozen=True)
class PatroniStatus:
    members: tuple[PatroniMember, ...]
    etcd_pid: int | None
    haproxy_pid: int | None
    service_dsn: str
    settings: tuple[int, int, int]  # ttl, loop_wait, retry_timeout as Patroni runs them
    notes: tuple[str, ...] = ()
    name: str = "patroni"

    @property
    def leader(self) -> PatroniMember | None:
        return next((m for m in self.members if m.role == "leader"), None)

    @property
    def replicas(self) -> tuple[PatroniMember, ...]:
        return tuple(m for m in self.members if m.role in ("replica", "sync_standby"))

    @property
    def healthy(self) -> bool:
        """etcd and HAProxy run, one leader that HAProxy routes writes to (and only to it),
        every other node a replica that streams."""
        leader = self.leader
        return (self.etcd_pid is not None and self.haproxy_pid is not None
                and leader is not None and leader.routed == "UP"
                and all(m.role in ("replica", "sync_standby") and m.state == "streaming"
                        and m.routed != "UP" for m in self.members if m is not leader)
                and len(self.members) == len(PATRONI_NODES))

    def lines(self) -> list[str]:
        """The human rendering for ``lab status`` (no click here: the command echoes it)."""
        out = [f"patroni  (etcd {'pid ' + str(self.etcd_pid) if self.etcd_pid else 'DOWN'}, "
               f"haproxy {'pid ' + str(self.haproxy_pid) if self.haproxy_pid else 'DOWN'}; "
               f"ttl {self.settings[0]}s, loop_wait {self.settings[1]}s, "
               f"retry_timeout {self.settings[2]}s)",
               f"  {'node':<5} {'role':<12} {'state':<10} {'port':>5} {'tl':>3} "
               f"{'patroni':>8} {'postgres':>8}  {'haproxy':<7} lag"]
        for m in self.members:
            lag = "" if m.lag_bytes is None else f"{m.lag_bytes} B"
            tl = "" if m.timeline is None else str(m.timeline)
            out.append(f"  {m.name:<5} {m.role:<12} {m.state:<10} {m.pg_port:>5} {tl:>3} "
                       f"{m.patroni_pid or '-':>8} {m.postmaster_pid or '-':>8}  "
                       f"{m.routed or '-':<7} {lag}")
        out.append(f"  service DSN (through HAProxy): {self.service_dsn}")
        out += [f"  note: {note}" for note in self.notes]
        return out

    def to_json(self) -> dict[str, Any]:
        leader = self.leader
        return {"name": self.name, "healthy": self.healthy,
                "leader": leader.name if leader else None,
                "replicas": [m.name for m in self.replicas], "etcd_pid": self.etcd_pid,
                "haproxy_pid": self.haproxy_pid, "service_dsn": self.service_dsn,
                "settings": {"ttl": self.settings[0], "loop_wait": self.settings[1],
                             "retry_timeout": self.settings[2]},
                "notes": list(self.notes),
                "members": [{"name": m.name, "role": m.role, "state": m.state,
                             "pg_port": m.pg_port, "rest_url": m.rest_url,
                             "timeline": m.timeline, "lag_bytes": m.lag_bytes,
                             "patroni_pid": m.patroni_pid, "postmaster_pid": m.postmaster_pid,
                             "haproxy": m.routed} for m in self.members]}


def fetch_cluster(lab: PatroniLab, path: str = "/cluster") -> dict[str, Any] | None:
    """``/cluster`` (or ``path``) from the first node whose REST API answers."""
    for node in PATRONI_NODES:
        try:
            with urllib.request.urlopen(f"{lab.rest_url(node)}{path}", timeout=1) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            continue
        if isinstance(data, dict):
            return data
    return None


def _routes(lab: PatroniLab, proxy: Haproxy) -> dict[str, str]:
    """HAProxy's view of the write backend: server name → UP/DOWN (``show stat`` CSV)."""
    text = proxy.show("show stat", lab.haproxy_socket)
    lines = text.lstrip("# ").splitlines()
    if not lines:
        return {}
    header = lines[0].split(",")
    out: dict[str, str] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "patroni_primary" and row.get("svname") in PATRONI_NODES:
            out[row["svname"]] = row.get("status", "").split(" ")[0]
    return out


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default


def _lag(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def patroni_cluster_status(lab: PatroniLab, notes: tuple[str, ...] = ()) -> PatroniStatus:
    proxy = Haproxy("patroni", lab.dir / "haproxy", lab.ports.haproxy_primary, lab.host)
    etcd = Etcd(lab.dir / "etcd", lab.ports.etcd_client, lab.ports.etcd_peer, lab.host)
    cluster = fetch_cluster(lab)
    seen = {str(m.get("name")): m for m in (cluster or {}).get("members", [])
            if isinstance(m, dict)}
    routes = _routes(lab, proxy)
    members = []
    for node in PATRONI_NODES:
        info = seen.get(node, {})
        timeline = info.get("timeline")
        members.append(PatroniMember(
            name=node, role=str(info.get("role", "absent")),
            state=str(info.get("state", "-")), pg_port=lab.pg_port(node),
            rest_url=lab.rest_url(node),
            timeline=timeline if isinstance(timeline, int) else None,
            lag_bytes=_lag(info.get("lag")),
            patroni_pid=read_pid(lab.pid_file(node), str(lab.conf_file(node))),
            postmaster_pid=postmaster_pid(lab.data_dir(node)), routed=routes.get(node, "")))
    extra = [] if cluster is not None else ["no Patroni REST API answers (/cluster)"]
    extra += [f"{m.name} is not in Patroni's /cluster (its Patroni is not running: "
              f"python -m drdrill.lab.patroni_ctl --lab-dir {lab.lab.lab_dir} start {m.name})"
              for m in members if m.role == "absent" and cluster is not None]
    live = fetch_cluster(lab, "/config") or {}  # what Patroni runs with (it may adjust)
    settings = (_int(live.get("ttl"), TTL_S), _int(live.get("loop_wait"), LOOP_WAIT_S),
                _int(live.get("retry_timeout"), RETRY_TIMEOUT_S))
    return PatroniStatus(tuple(members), etcd.pid, proxy.pid, lab.service_dsn(LAB_DB),
                         settings, (*notes, *extra))
