"""``drdrill lab up --with patroni``: two PostgreSQL nodes managed by Patroni, a one-node
etcd, and HAProxy routing writes to whichever node Patroni made the leader.

They sit beside the plain lab's pg1/pg2 (which drills fence and promote by hand, something
Patroni would fight) under ``<lab_dir>/patroni``, on their own ports, recorded in the
``patroni`` section of lab.env.json (inventory.patroni-example.yml reads it). Everything runs
as the lab's unprivileged account; no systemd: drdrill starts the daemons itself and
``lab down`` stops them (HAProxy, Patroni — which stops its PostgreSQL —, then etcd).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from drdrill.errors import LabError
from drdrill.lab.binaries import find_bin_dir
from drdrill.lab.config import LAB_DB, LabConfig
from drdrill.lab.etcd import Etcd
from drdrill.lab.haproxy import Haproxy, global_section
from drdrill.lab.node import postmaster_pid
from drdrill.lab.osuser import OsUser, ensure_traversable, lab_os_user
from drdrill.lab.patroni_conf import (
    PATRONI_NODES,
    PatroniLab,
    PatroniPorts,
    haproxy_sections,
    node_config,
)
from drdrill.lab.patroni_status import PatroniStatus, patroni_cluster_status
from drdrill.lab.ports import port_free, port_holder
from drdrill.lab.process import kill_tree, log_tail, read_pid, spawn

PATRONI_HINT = ("install Patroni into drdrill's environment: pip install 'drdrill[patroni]' "
                "(PyPI: patroni[etcd3] and psycopg2-binary), or set DRDRILL_PATRONI to the "
                "patroni executable")


def find_patroni() -> Path:
    """``$DRDRILL_PATRONI``, else ``patroni`` beside this interpreter (the venv), else PATH."""
    explicit = os.environ.get("DRDRILL_PATRONI")
    beside = Path(sys.executable).parent / "patroni"
    candidates = [explicit] if explicit else [str(beside), shutil.which("patroni")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise LabError("patroni not found" if not explicit else
                   f"DRDRILL_PATRONI={explicit} is not executable", hint=PATRONI_HINT)


def _etcd(lab: PatroniLab) -> Etcd:
    return Etcd(lab.dir / "etcd", lab.ports.etcd_client, lab.ports.etcd_peer, lab.host)


def _haproxy(lab: PatroniLab) -> Haproxy:
    return Haproxy("patroni", lab.dir / "haproxy", lab.ports.haproxy_primary, lab.host)


def read_patroni_lab(config: LabConfig) -> PatroniLab | None:
    """The Patroni part of the lab in ``config.lab_dir``, as recorded, or None."""
    try:
        env = json.loads(config.env_file.read_text())
        return PatroniLab(config, PatroniPorts.from_json(env["patroni"]["ports"]))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def env_section(lab: PatroniLab, bin_dir: Path) -> dict[str, Any]:
    """What the inventory needs: endpoints, dirs, and how to crash/start a node."""
    ctl = [sys.executable, "-m", "drdrill.lab.patroni_ctl", "--lab-dir", str(lab.lab.lab_dir)]
    return {
        "ports": lab.ports.to_json(), "dir": str(lab.dir), "bin_dir": str(bin_dir),
        "service_dsn": lab.service_dsn(LAB_DB),
        "replicas_dsn": lab.service_dsn(LAB_DB).replace(
            f"port={lab.ports.haproxy_primary}", f"port={lab.ports.haproxy_replicas}").replace(
            "target_session_attrs=read-write", "target_session_attrs=read-only"),
        "haproxy": {"host": lab.host, "primary_port": lab.ports.haproxy_primary,
                    "replicas_port": lab.ports.haproxy_replicas},
        "ctl": ctl,
        "nodes": {n: {"pg_port": lab.pg_port(n), "rest_url": lab.rest_url(n),
                      "data": str(lab.data_dir(n)), "log": str(lab.log_file(n))}
                  for n in PATRONI_NODES},
    }


def _write_env(lab: PatroniLab, bin_dir: Path) -> None:
    """Merge the ``patroni`` section into lab.env.json (the plain lab keeps its keys)."""
    try:
        env = json.loads(lab.lab.env_file.read_text())
    except (OSError, ValueError):
        env = {}
    env["patroni"] = env_section(lab, bin_dir)
    tmp = lab.lab.env_file.with_name("lab.env.json.patroni.tmp")
    tmp.write_text(json.dumps(env, indent=2) + "\n")
    tmp.chmod(0o644)
    tmp.replace(lab.lab.env_file)


def _check_ports(lab: PatroniLab) -> None:
    """Fail before starting anything when a port of a component not yet running is taken."""
    busy = [p for p in lab.ports.listed() if not port_free(lab.host, p)]
    if busy:
        holders = ", ".join(f"{p}{f' ({h})' if (h := port_holder(p)) else ''}" for p in busy)
        raise LabError(f"Patroni lab ports in use: {holders}",
                       hint="choose other ports: drdrill lab up --with patroni "
                            "--patroni-base-port N (uses N+1..N+8)")


def node_pid(lab: PatroniLab, node: str) -> int | None:
    return read_pid(lab.pid_file(node), str(lab.conf_file(node)))


def start_node(lab: PatroniLab, node: str, user: OsUser | None = None) -> int:
    """Start ``node``'s Patroni (no-op when it runs); it starts/rejoins its PostgreSQL."""
    running = node_pid(lab, node)
    if running is not None:
        return running
    user = user or lab_os_user()
    stale = postmaster_pid(lab.data_dir(node))
    if stale is not None:  # a postmaster whose Patroni died: Patroni must own it from start
        kill_tree(stale, timeout=10.0, sig=signal.SIGQUIT)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "HOME": str(lab.dir), "PYTHONUNBUFFERED": "1"}
    return spawn([str(find_patroni()), str(lab.conf_file(node))],
                 log_file=lab.log_file(node), pid_file=lab.pid_file(node), user=user,
                 cwd=lab.dir, env=env)


def crash_node(lab: PatroniLab, node: str) -> list[int]:
    """The fault: SIGKILL the node's Patroni, then its postmaster and every child of it (no
    clean shutdown, the leader key is not released). Returns the pids killed."""
    killed: list[int] = []
    patroni = node_pid(lab, node)
    if patroni is not None:
        os.kill(patroni, signal.SIGKILL)
        killed.append(patroni)
    postmaster = postmaster_pid(lab.data_dir(node))
    if postmaster is not None:
        killed.append(postmaster)
        kill_tree(postmaster, timeout=5.0, sig=signal.SIGKILL)
    if patroni is not None:
        kill_tree(patroni, timeout=5.0, sig=signal.SIGKILL)
    return killed


def stop_node(lab: PatroniLab, node: str, timeout: float = 30.0) -> None:
    """Stop Patroni cleanly (SIGTERM: it stops PostgreSQL and releases the leader key),
    escalating to SIGKILL; then make sure no postmaster of the node is left."""
    pid = node_pid(lab, node)
    if pid is not None:
        kill_tree(pid, timeout=timeout)
    postmaster = postmaster_pid(lab.data_dir(node))
    if postmaster is not None:
        kill_tree(postmaster, timeout=10.0, sig=signal.SIGQUIT)
    lab.pid_file(node).unlink(missing_ok=True)


def _write_configs(lab: PatroniLab, bin_dir: Path, user: OsUser) -> None:
    for directory in (lab.dir, lab.run_dir, lab.log_dir):
        user.make_dir(directory, 0o755 if directory == lab.dir else 0o700)
    for node in PATRONI_NODES:
        text = yaml.safe_dump(node_config(lab, node, bin_dir), sort_keys=False)
        user.write_file(lab.conf_file(node), text, mode=0o600)


def _request(url: str, timeout: float = 1.0) -> int | None:
    """HTTP status of GET ``url`` (a 503 is an answer too); None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _leader_answers(lab: PatroniLab) -> bool:
    return any(_request(f"{lab.rest_url(n)}/primary") == 200 for n in PATRONI_NODES)


def _wait(what: str, done: Any, lab: PatroniLab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            tails = "; ".join(f"{n}: {log_tail(lab.log_file(n), 3)}" for n in PATRONI_NODES)
            raise LabError(f"Patroni lab: {what} not within {timeout:.0f}s ({tails})",
                           hint=f"logs in {lab.log_dir}")
        time.sleep(0.2)


def _create_db(lab: PatroniLab) -> None:
    import psycopg

    with psycopg.connect(lab.service_dsn("postgres"), autocommit=True) as conn:
        if conn.execute("select 1 from pg_database where datname = %s",
                        (LAB_DB,)).fetchone() is None:
            conn.execute(f'create database "{LAB_DB}"')


def patroni_up(config: LabConfig, ports: PatroniPorts | None = None,
               timeout: float = 90.0) -> PatroniStatus:
    """Start (or create) the Patroni lab and wait until a leader takes writes through
    HAProxy and every replica streams. An existing one keeps its recorded ports."""
    recorded = read_patroni_lab(config)
    lab = recorded or PatroniLab(config, ports or PatroniPorts.from_base())
    if recorded and ports and ports != recorded.ports:
        raise LabError(f"the Patroni lab in {config.lab_dir} was created with other ports "
                       f"({recorded.ports.pg[0]}...)",
                       hint="discard it first: drdrill lab down --purge")
    patroni, user = find_patroni(), lab_os_user()
    bin_dir = Path(str(_recorded_bin_dir(config) or find_bin_dir()))
    if not any(node_pid(lab, n) for n in PATRONI_NODES) and _etcd(lab).pid is None:
        _check_ports(lab)
    notes = ensure_traversable(lab.dir, user) + ensure_traversable(bin_dir / "postgres", user)
    notes += ensure_traversable(Path(os.path.realpath(patroni)), user)
    notes += ensure_traversable(Path(os.path.realpath(sys.executable)), user)
    _write_configs(lab, bin_dir, user)
    _write_env(lab, bin_dir)
    _etcd(lab).start(user)
    first, second = PATRONI_NODES
    start_node(lab, first, user)  # the first bootstraps (initdb); the second clones from it
    _wait("a leader", lambda: _leader_answers(lab), lab, timeout)
    start_node(lab, second, user)
    proxy = _haproxy(lab)
    if not proxy.running:
        proxy.start(global_section() + haproxy_sections(lab), user)
    _wait("writes through HAProxy", lambda: _writable(lab), lab, timeout)
    _create_db(lab)
    _wait("every replica streaming", lambda: patroni_cluster_status(lab).healthy, lab, timeout)
    return patroni_cluster_status(lab, tuple(notes))


def _recorded_bin_dir(config: LabConfig) -> str | None:
    try:
        env = json.loads(config.env_file.read_text())
    except (OSError, ValueError):
        return None
    found = env.get("patroni", {}).get("bin_dir") or env.get("bin_dir")
    return str(found) if found else None


def _writable(lab: PatroniLab) -> bool:
    import psycopg

    try:
        with psycopg.connect(lab.service_dsn("postgres"), autocommit=True) as conn:
            conn.execute("select 1")
    except psycopg.Error:
        return False
    return True


def patroni_status(config: LabConfig) -> PatroniStatus | None:
    """The Patroni lab's status, or None when this lab has none."""
    lab = read_patroni_lab(config)
    return None if lab is None else patroni_cluster_status(lab)


def patroni_down(config: LabConfig) -> None:
    """Stop HAProxy, every Patroni (replicas first, so the leader does not fail over to a
    stopping node) and its PostgreSQL, then etcd; LabError naming what survived."""
    lab = read_patroni_lab(config)
    if lab is None:
        return
    _haproxy(lab).stop()
    status = patroni_cluster_status(lab)
    leader = status.leader.name if status.leader else None
    for node in sorted(PATRONI_NODES, key=lambda n: n == leader):
        stop_node(lab, node)
    _etcd(lab).stop()
    left = [f"Patroni {n}" for n in PATRONI_NODES if node_pid(lab, n)]
    left += [f"PostgreSQL {n}" for n in PATRONI_NODES if postmaster_pid(lab.data_dir(n))]
    left += ["etcd"] if _etcd(lab).pid else []
    if left:
        raise LabError(f"could not stop {', '.join(left)} of the Patroni lab")
