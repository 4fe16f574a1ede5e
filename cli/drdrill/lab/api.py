"""The embedded lab's library API: ``lab_up``, ``lab_status``, ``lab_down``.

A lab directory holds ``pg1/`` and ``pg2/`` (data dirs), ``archive/`` (WAL archive),
``basebackup/`` (taken by playbooks/pg-basebackup.yml), ``run/`` (unix sockets), ``log/``
and ``lab.env.json`` — the facts the Ansible inventory reads (see inventory.example.yml).
Roles are not fixed to nodes: after a failover pg2 may be the primary; status asks each node.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drdrill.errors import LabError
from drdrill.lab.binaries import INSTALL_HINT, REQUIRED, find_bin_dir, server_version
from drdrill.lab.config import (
    DB_SUPERUSER,
    LAB_DB,
    NODE_NAMES,
    LabConfig,
    LabStatus,
    NodeStatus,
)
from drdrill.lab.node import Node, conf_quote, postmaster_pid, slot_name
from drdrill.lab.osuser import OsUser, ensure_traversable, lab_os_user

if TYPE_CHECKING:
    from drdrill.lab.patroni_conf import PatroniPorts
    from drdrill.lab.service.lab import ServicePorts

ENV_FORMAT = 1
EXTRA_SECTIONS = ("service", "patroni")  # lab.env.json sections written by `lab up --with ...`


def service_dsn(cfg: LabConfig, dbname: str = LAB_DB) -> str:
    """The multi-host DSN a client uses: libpq finds whichever node takes writes."""
    return (f"host={cfg.host},{cfg.host} port={cfg.primary_port},{cfg.standby_port} "
            f"dbname={dbname} user={DB_SUPERUSER} target_session_attrs=read-write "
            f"connect_timeout=1")


def read_env(cfg: LabConfig) -> dict[str, Any] | None:
    try:
        data = json.loads(cfg.env_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _effective(cfg: LabConfig, env: dict[str, Any] | None) -> LabConfig:
    """An existing lab keeps the ports it was created with."""
    if env is None:
        return cfg
    nodes = env.get("nodes", {})
    return LabConfig(cfg.lab_dir, int(nodes["pg1"]["port"]), int(nodes["pg2"]["port"]), cfg.host)


def _nodes(cfg: LabConfig, bin_dir: Path, user: OsUser) -> tuple[Node, Node]:
    first, second = (Node(n, cfg.port_of(n), cfg.data_dir(n), cfg, bin_dir, user)
                     for n in NODE_NAMES)
    return first, second


def _write_env(cfg: LabConfig, bin_dir: Path, user: OsUser) -> None:
    env = {
        "format": ENV_FORMAT, "lab_dir": str(cfg.lab_dir), "bin_dir": str(bin_dir),
        "pg_version": server_version(bin_dir), "os_user": user.name,
        "run_as": list(user.run_as), "host": cfg.host, "db_superuser": DB_SUPERUSER,
        "dbname": LAB_DB, "archive_dir": str(cfg.archive_dir),
        "backup_dir": str(cfg.backup_dir), "socket_dir": str(cfg.socket_dir),
        "log_dir": str(cfg.log_dir), "service_dsn": service_dsn(cfg),
        "nodes": {n: {"port": cfg.port_of(n), "data": str(cfg.data_dir(n))} for n in NODE_NAMES},
    }
    old = read_env(cfg) or {}
    env.update({k: old[k] for k in EXTRA_SECTIONS if k in old})  # kept by a plain `lab up`
    tmp = cfg.env_file.with_name("lab.env.json.tmp")
    tmp.write_text(json.dumps(env, indent=2) + "\n")
    tmp.chmod(0o644)
    tmp.replace(cfg.env_file)


def _cluster_conf(cfg: LabConfig) -> str:
    archive = str(cfg.archive_dir)
    quoted = "'" + archive.replace("'", "'\\''") + "'"
    command = f"test ! -f {quoted}/%f && cp %p {quoted}/%f"
    return "\n".join([
        "", "# --- drdrill lab (shared by every node; node settings: postgresql.auto.conf)",
        f"listen_addresses = {conf_quote(cfg.host)}",
        f"unix_socket_directories = {conf_quote(str(cfg.socket_dir))}",
        "wal_level = replica", "wal_log_hints = on", "wal_keep_size = '256MB'",
        "max_wal_senders = 10", "max_replication_slots = 10", "hot_standby = on",
        "hot_standby_feedback = on", "archive_mode = on",
        f"archive_command = {conf_quote(command)}",
        "wal_retrieve_retry_interval = '500ms'", "shared_buffers = '32MB'",
        "max_connections = 60", "log_line_prefix = '%m [%p] %q%a '", "",
    ])


HBA = """# drdrill lab: trust, loopback and the lab's own unix socket directory only
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
"""


def _prepare_dirs(cfg: LabConfig, user: OsUser) -> list[str]:
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    notes = ensure_traversable(cfg.lab_dir, user)
    user.make_dir(cfg.lab_dir, 0o755)
    for directory in (cfg.archive_dir, cfg.socket_dir, cfg.log_dir):
        user.make_dir(directory, 0o700)
    return notes


def _init_primary(node: Node, cfg: LabConfig) -> None:
    if node.data.exists():
        shutil.rmtree(node.data)  # a half-made data dir from an interrupted `up`
    node.user.make_dir(node.data)
    node.user.run([node.bin("initdb"), "-D", str(node.data), "-U", DB_SUPERUSER, "-A", "trust",
                   "-E", "UTF8", "--no-locale"], timeout=180)
    conf = node.data / "postgresql.conf"
    node.user.write_file(conf, conf.read_text() + _cluster_conf(cfg))
    node.user.write_file(node.data / "pg_hba.conf", HBA)
    node.write_node_conf(None)


def _create_db(node: Node) -> None:
    with node.connect() as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s",
                              (LAB_DB,)).fetchone()
        if exists is None:
            conn.execute(f'create database "{LAB_DB}"')


def _clone_standby(node: Node, upstream: Node) -> None:
    """pg_basebackup -R -X stream -c fast -C -S <slot> from ``upstream``, then own port."""
    if node.data.exists():
        shutil.rmtree(node.data)
    with upstream.connect() as conn:
        conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                     "where slot_name = %s and not active", (slot_name(node.name),))
    node.user.run([node.bin("pg_basebackup"), "-h", upstream.cfg.host, "-p", str(upstream.port),
                   "-U", DB_SUPERUSER, "-D", str(node.data), "-R", "-X", "stream", "-c", "fast",
                   "-C", "-S", slot_name(node.name)], timeout=300)
    node.write_node_conf(upstream.port)


def _check_binaries(bin_dir: Path, user: OsUser) -> None:
    done = user.run([str(bin_dir / "pg_ctl"), "--version"], check=False)
    if done.returncode != 0:
        raise LabError(f"{bin_dir}/pg_ctl cannot be run by account {user.name}: "
                       f"{(done.stderr or done.stdout).strip()}",
                       hint="make the binaries' directory readable by that account, or "
                            "set DRDRILL_PG_BIN / DRDRILL_LAB_OS_USER")


def _lab_bin_dir(env: dict[str, Any] | None) -> Path:
    """An existing lab keeps the binaries it was created with (same major version)."""
    if env is not None:
        recorded = Path(str(env.get("bin_dir", "")))
        if all((recorded / t).exists() for t in REQUIRED):
            return recorded
        raise LabError(f"the lab was created with the binaries in {recorded}, which are gone",
                       hint=f"{INSTALL_HINT}; or discard it: drdrill lab down --purge")
    return find_bin_dir()


def lab_up(config: LabConfig) -> LabStatus:
    """Create or start the lab; idempotent; never makes a second primary."""
    env = read_env(config)
    if env is not None:
        cfg = _effective(config, env)
        if (cfg.primary_port, cfg.standby_port) != (config.primary_port, config.standby_port):
            raise LabError(f"the lab in {config.lab_dir} was created with ports "
                           f"{cfg.primary_port}/{cfg.standby_port}, not "
                           f"{config.primary_port}/{config.standby_port}",
                           hint=f"pass --primary-port {cfg.primary_port} --standby-port "
                                f"{cfg.standby_port}, or discard it: drdrill lab down --purge")
    cfg = config
    bin_dir = _lab_bin_dir(env)
    user = lab_os_user()
    nodes = _nodes(cfg, bin_dir, user)
    for node in nodes:  # fail before touching anything when a port is taken
        if node.pid is None:
            node.check_port()
    notes = _prepare_dirs(cfg, user)
    notes += ensure_traversable(bin_dir, user)
    _check_binaries(bin_dir, user)
    _write_env(cfg, bin_dir, user)
    first, second = nodes
    if not first.initialized and not second.initialized:
        _init_primary(first, cfg)
        first.start()
        _create_db(first)
        _clone_standby(second, first)
        second.start()
    else:
        _refuse_without_primary(nodes)
        notes += _start_existing(nodes)
    return _wait_healthy(cfg, bin_dir, user, tuple(notes), timeout=20.0)


def _refuse_without_primary(nodes: tuple[Node, Node]) -> None:
    """Both nodes set up as standbys (an interrupted drill can leave each streaming from the
    other): starting them would report a lab with no primary as up. Refuse and say why."""
    if all(n.initialized and n.configured_standby for n in nodes) and \
            not any(n.status().role == "primary" for n in nodes):
        raise LabError("pg1 and pg2 are both standbys (standby.signal): the lab has no "
                       "primary", hint="run drdrill lab repair")


def _start_existing(nodes: tuple[Node, Node]) -> list[str]:
    notes: list[str] = []
    # configured primaries first (no standby.signal), then standbys
    for node in sorted((n for n in nodes if n.initialized), key=lambda n: n.configured_standby):
        if node.pid is not None:
            continue
        others = [o for o in nodes if o is not node]
        if not node.configured_standby and any(o.status().role == "primary" for o in others):
            notes.append(f"{node.name} not started: another node is the primary and "
                         f"{node.name} has no standby.signal (it would be a second primary); "
                         "make it a standby of the primary: drdrill lab repair")
            continue
        node.start()
    primary = next((n for n in nodes if n.status().role == "primary"), None)
    for node in nodes:
        if not node.initialized and primary is not None:
            _clone_standby(node, primary)
            node.start()
    return notes


def _wait_healthy(cfg: LabConfig, bin_dir: Path, user: OsUser, notes: tuple[str, ...],
                  timeout: float) -> LabStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = _status(cfg, bin_dir, user, notes)
        settled = all(s.lag_bytes is not None for s in status.standbys)  # first feedback
        fenced = any("is fenced" in note for note in status.notes)
        if (status.healthy and settled) or fenced or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _status(cfg: LabConfig, bin_dir: Path | None, user: OsUser,
            notes: tuple[str, ...] = ()) -> LabStatus:
    nodes = [Node(n, cfg.port_of(n), cfg.data_dir(n), cfg, bin_dir or Path("."), user)
             for n in NODE_NAMES]
    states = [n.status() for n in nodes]
    primary = next((s for s in states if s.role == "primary"), None)
    lags = next(n for n in nodes if n.name == primary.name).lag_of_standbys() if primary else {}
    states = [_with_lag(s, lags) for s in states]
    extra = [] if any(n.initialized for n in nodes) else [
        f"no lab in {cfg.lab_dir} yet: drdrill lab up"]
    extra += [f"{n.name} is fenced (drdrill.fenced); make it a standby of the primary: "
              "drdrill lab repair" for n in nodes if (n.data / "drdrill.fenced").exists()]
    from drdrill.lab.clones import clone_notes  # run --isolated's clone (docs/isolated.md)

    extra += clone_notes(cfg.lab_dir)
    return LabStatus(cfg.lab_dir, tuple(states), bin_dir, user.name, tuple([*notes, *extra]))


def _with_lag(state: NodeStatus, lags: dict[str, int]) -> NodeStatus:
    if state.role != "standby" or state.name not in lags:
        return state
    return replace(state, lag_bytes=lags[state.name])


def lab_status(config: LabConfig) -> LabStatus:
    """Each node's role as the node itself reports it (primary, standby, unreachable, down)."""
    env = read_env(config)
    cfg = _effective(config, env)
    bin_dir = Path(str(env["bin_dir"])) if env and env.get("bin_dir") else None
    return _status(cfg, bin_dir, lab_os_user())


def _instances(lab_dir: Path) -> list[Path]:
    """Every data dir in the lab with a postmaster.pid (the two nodes, restored instances)."""
    if not lab_dir.is_dir():
        return []
    return sorted(p.parent for p in lab_dir.glob("*/postmaster.pid"))


def lab_down(config: LabConfig, purge: bool = False) -> None:
    """Stop every PostgreSQL instance of the lab (waits until gone); ``purge`` deletes it."""
    env = read_env(config)
    cfg = _effective(config, env)
    user = lab_os_user()
    bin_dir = Path(str(env["bin_dir"])) if env and env.get("bin_dir") else find_bin_dir()
    from drdrill.lab.service.lab import service_down  # lazy: most labs have no service

    service_down(cfg)  # its sites write to the database: stop them first
    from drdrill.lab.patroni import patroni_down  # lazy, like the service

    patroni_down(cfg)  # HAProxy, Patroni and its PostgreSQL nodes, etcd (no-op without it)
    left: list[str] = []
    for data in _instances(cfg.lab_dir):
        Node(data.name, 0, data, cfg, bin_dir, user).stop("fast")
        if postmaster_pid(data) is not None:
            left.append(str(data))
    if left:
        raise LabError(f"could not stop PostgreSQL in {', '.join(left)}")
    if purge and cfg.lab_dir.exists():
        shutil.rmtree(cfg.lab_dir)



# --- `drdrill lab up --with NAME`: parts a lab can have beside pg1/pg2 ----------------------
LAB_EXTRAS = ("patroni", "service")


class ExtraStatus(Protocol):
    """What ``lab status`` shows of an extra (lab/patroni_status.py, lab/service/lab.py)."""

    @property
    def healthy(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


def lab_extras_up(config: LabConfig, names: tuple[str, ...], *,
                  patroni_ports: PatroniPorts | None = None,
                  service_ports: ServicePorts | None = None) -> dict[str, ExtraStatus]:
    """Start the extras named (after ``lab_up``), in the order given; their status."""
    started: dict[str, ExtraStatus] = {}
    for name in dict.fromkeys(names):
        if name == "patroni":
            from drdrill.lab.patroni import patroni_up  # lazy: etcd/Patroni/HAProxy labs only

            started[name] = patroni_up(config, patroni_ports)
        elif name == "service":
            from drdrill.lab.service.lab import service_up

            started[name] = service_up(config, service_ports)
        else:
            raise LabError(f"unknown lab extra {name!r}",
                           hint=f"choose from {', '.join(LAB_EXTRAS)}")
    return started


def lab_extras_status(config: LabConfig) -> dict[str, ExtraStatus]:
    """The status of every extra this lab was set up with (none: empty)."""
    from drdrill.lab.patroni import patroni_status
    from drdrill.lab.service.lab import service_status

    found: dict[str, ExtraStatus | None] = {"patroni": patroni_status(config),
                                            "service": service_status(config)}
    return {name: status for name, status in found.items() if status is not None}
