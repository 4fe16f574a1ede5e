"""The Patroni part of ``drdrill lab repair``: one leader, one streaming replica, HAProxy
routing writes to the leader.

An interrupted patroni-failover drill (or a real incident) can leave a node's Patroni and
PostgreSQL killed (the crash step ran, the rejoin did not), a node frozen (SIGSTOP), a
postmaster whose Patroni died, etcd or HAProxy stopped, or an old leader whose timeline
Patroni cannot rewind. drdrill does not choose the leader: Patroni does (it keeps the data of
the node that holds, or last held, the leader key). The repair:

1. thaws every frozen process of the lab (Patroni, PostgreSQL, etcd, HAProxy);
2. starts etcd, every node's Patroni that does not run (a postmaster left without its
   Patroni is stopped first: Patroni must own it), and HAProxy;
3. waits until the cluster is healthy; a node still not streaming after REINIT_AFTER_S is
   re-initialised from the leader through Patroni's REST API (POST /reinitialize, what
   ``patronictl reinit`` does), then the repair waits again.
Each action is said, in order; a lab without Patroni is left alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

from drdrill.errors import LabError
from drdrill.executors.proctree import descendants, is_stopped
from drdrill.lab.config import LabConfig, Say
from drdrill.lab.haproxy import global_section
from drdrill.lab.node import postmaster_pid
from drdrill.lab.osuser import lab_os_user
from drdrill.lab.patroni import _etcd, _haproxy, node_pid, read_patroni_lab, start_node
from drdrill.lab.patroni_conf import PATRONI_NODES, PatroniLab, haproxy_sections
from drdrill.lab.patroni_status import PatroniStatus, patroni_cluster_status

REINIT_AFTER_S = 45.0  # a rewind plus restart takes seconds; ttl 20 s bounds a new election
HEALTHY_TIMEOUT_S = 90.0


def _lab_pids(lab: PatroniLab) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for node in PATRONI_NODES:
        pids = [p for p in (node_pid(lab, node), postmaster_pid(lab.data_dir(node))) if p]
        found[node] = pids + [c for p in pids for c in descendants(p)]
    found["etcd"] = [p for p in (_etcd(lab).pid,) if p]
    found["haproxy"] = [p for p in (_haproxy(lab).pid,) if p]
    return found


def _thaw(lab: PatroniLab, say: Say) -> None:
    for name, pids in _lab_pids(lab).items():
        frozen = [p for p in pids if is_stopped(p)]
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                continue
        if frozen:
            say(f"thawed {name} (pids {', '.join(map(str, frozen))} were frozen)")


def _start_missing(lab: PatroniLab, say: Say) -> None:
    user = lab_os_user()
    if _etcd(lab).pid is None:
        _etcd(lab).start(user)
        say("started etcd (it was down)")
    for node in PATRONI_NODES:
        if node_pid(lab, node) is None:
            orphan = postmaster_pid(lab.data_dir(node)) is not None
            start_node(lab, node, user)
            say(f"started {node}'s Patroni (it was down"
                f"{'; its orphaned PostgreSQL was stopped first' if orphan else ''})")
    proxy = _haproxy(lab)
    if not proxy.running:
        proxy.start(global_section() + haproxy_sections(lab), user)
        say("started HAProxy (it was down)")


def _wait(lab: PatroniLab, timeout: float) -> PatroniStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = patroni_cluster_status(lab)
        if status.healthy or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def _reinitialize(lab: PatroniLab, node: str) -> str:
    """POST /reinitialize on ``node`` (Patroni wipes its data dir and clones the leader)."""
    request = urllib.request.Request(f"{lab.rest_url(node)}/reinitialize",
                                     data=json.dumps({"force": True}).encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(resp.read().decode(errors="replace")).strip()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        raise LabError(f"cannot ask {node}'s Patroni to reinitialise: {exc}") from exc


def _describe(status: PatroniStatus) -> str:
    return ", ".join(f"{m.name} {m.role}/{m.state} haproxy {m.routed or '-'}"
                     for m in status.members) or "no member answers"


def _healthy(status: PatroniStatus) -> str:
    return (f"Patroni: {status.leader.name if status.leader else '?'} leads, "
            f"{', '.join(m.name for m in status.replicas)} streams, HAProxy routes writes")


def patroni_repair(config: LabConfig, say: Say) -> PatroniStatus | None:
    """Repair the Patroni lab (module docstring); None when the lab has none."""
    lab = read_patroni_lab(config)
    if lab is None:
        return None
    _thaw(lab, say)
    _start_missing(lab, say)
    status = _wait(lab, REINIT_AFTER_S)
    if status.healthy:
        say(_healthy(status))
        return status
    if status.leader is None:
        raise LabError(f"the Patroni lab has no leader after {REINIT_AFTER_S:g}s "
                       f"({_describe(status)})",
                       hint=f"see the Patroni logs in {lab.log_dir}, or start over: "
                            "drdrill lab down --purge && drdrill lab up --with patroni")
    for member in status.members:
        if member is not status.leader and member.state != "streaming":
            answer = _reinitialize(lab, member.name)
            say(f"reinitialised {member.name} from {status.leader.name} (it was "
                f"{member.role}/{member.state}; Patroni: {answer})")
    status = _wait(lab, HEALTHY_TIMEOUT_S)
    if not status.healthy:
        raise LabError(f"the Patroni lab is still not healthy ({_describe(status)})",
                       hint=f"see the Patroni logs in {lab.log_dir}")
    say(_healthy(status))
    return status
