"""Running the PostgreSQL drills over SSH against the namespace hosts.

- ``pg_inventory`` writes an inventory shaped like inventory.example.yml (the same groups
  ``postgres`` > ``primary``/``standby`` and the same pg_* variables) whose only
  differences are connection details — ``ansible_host``, key, known_hosts, user — and
  where the harness put PostgreSQL (data dirs, port, addresses), plus the ``service_dsn``
  the shipped runbooks' probes use, so tests run drills/*.yml unedited.
- ``render_drill`` copies a runbook from tests/fixtures/drills into a work dir with the
  harness's subnet in its DSNs, beside a ``playbooks`` symlink to the repository's
  playbooks/ (the runbook then runs the real playbooks, not copies).
- ``ssh_leftovers`` lists ssh / ansible-playbook processes that name the harness's or a
  run's paths (what must not survive a run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .netns import NetnsHarness
from .pg import PG_BIN, PG_USER, PgPair

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DRILLS = ROOT / "tests" / "fixtures" / "drills"
FIXTURE_PLAYBOOKS = ROOT / "tests" / "fixtures" / "playbooks"
FIXTURE_SUBNET = "10.213."
DBNAME = "drdrill"


def connection_vars(harness: NetnsHarness, name: str) -> dict[str, Any]:
    """The harness's SSH connection vars for ``name``, without its ControlPath: the engine
    chooses where ControlPersist masters live (and ends them with the run)."""
    hv = dict(harness.inventory_data()["all"]["hosts"][name])
    args = str(hv["ansible_ssh_common_args"])
    hv["ansible_ssh_common_args"] = re.sub(r"\s*-o ControlPath=\S+", "", args)
    return {k: v for k, v in hv.items() if k.startswith("ansible_")}


def pg_inventory(harness: NetnsHarness, pg: PgPair, path: Path,
                 extra_host_vars: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """inventory.example.yml with the connection details of the namespace hosts."""
    def host(node: Any) -> dict[str, Any]:
        hv: dict[str, Any] = connection_vars(harness, node.host)
        hv.update({
            "pg_host": node.address,
            "pg_port": node.port,
            "pg_data": str(node.data),
            "pg_log": str(node.log),
            # PostgreSQL settings that belong to the node, not the cluster: pg_rewind copies
            # the source's postgresql.conf, and the harness's nodes listen on different
            # addresses with their sockets in different directories
            "pg_node_settings": {
                "listen_addresses": node.address,
                "unix_socket_directories": str(pg.dir / f"sock-{node.data.name}"),
            },
        })
        hv.update((extra_host_vars or {}).get(node.host, {}))
        return hv

    data = {"all": {
        "vars": {
            "pg_bin": str(PG_BIN),
            "pg_os_user": PG_USER,
            "pg_run_as": ["runuser", "-u", PG_USER, "--"],
            "pg_superuser": PG_USER,
            "pg_dbname": DBNAME,
            "pg_archive": str(pg.dir / "archive"),
            "pg_backup_dir": str(pg.dir / "basebackup"),
            "lab_dir": str(pg.dir),
            # what the shipped runbooks' probes dial ({{ service_dsn }}): both hosts, the
            # writable one wins; tcp_user_timeout bounds a kept connection whose peer
            # vanished without a RST (a partition), else the canary waits minutes for TCP
            "service_dsn": service_dsn(pg),
        },
        "children": {"postgres": {"children": {
            "primary": {"hosts": {pg.primary.host: host(pg.primary)}},
            "standby": {"hosts": {pg.standby.host: host(pg.standby)}},
        }}},
    }}
    path.write_text("# inventory.example.yml over SSH to the tests/harness namespace hosts\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return path


def service_dsn(pg: PgPair, dbname: str = DBNAME) -> str:
    """The multi-host DSN of the pair, following the writable node."""
    return (f"host={pg.primary.address},{pg.standby.address} "
            f"port={pg.primary.port},{pg.standby.port} dbname={dbname} user={PG_USER} "
            "target_session_attrs=read-write connect_timeout=1 tcp_user_timeout=1000")


def create_database(pg: PgPair, dbname: str = DBNAME) -> None:
    """The application database the drills' DSNs name (replicated to the standby)."""
    import psycopg

    with psycopg.connect(pg.primary.dsn(), autocommit=True) as conn:
        conn.execute(f"create database {dbname}")


def render_drill(fixture: str | Path, harness: NetnsHarness, work: Path,
                 edit: Any = None, playbooks: Path = ROOT / "playbooks") -> Path:
    """Copy a fixture runbook into ``work/drills`` with the harness's subnet, beside a
    ``work/playbooks`` symlink to ``playbooks``; ``edit`` may change the parsed YAML (a
    callable taking and returning the mapping)."""
    source = Path(fixture)
    if not source.is_absolute():
        source = FIXTURE_DRILLS / source
    text = source.read_text().replace(FIXTURE_SUBNET, f"10.{harness.octet}.")
    if edit is not None:
        text = yaml.safe_dump(edit(yaml.safe_load(text)), sort_keys=False)
    (work / "drills").mkdir(parents=True, exist_ok=True)
    link = work / "playbooks"
    if not link.exists():
        link.symlink_to(playbooks, target_is_directory=True)
    target = work / "drills" / source.name
    target.write_text(text)
    return target


def ssh_leftovers(*needles: str) -> list[str]:
    """Live ssh / ansible-playbook processes whose command line names any of ``needles``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] == "Z" or not raw:
            continue
        line = raw.replace(b"\0", b" ").decode(errors="replace")
        program = Path(line.split(" ", 1)[0]).name
        is_ansible = "ansible" in line and ("ansible-playbook" in line
                                            or program.startswith("ansible"))
        if (program == "ssh" or line.startswith("ssh:") or is_ansible) and \
                any(n in line for n in needles):
            found.append(f"{entry}: {line[:200]}")
    return found


def ssh_inventory(harness: NetnsHarness, path: Path,
                  groups: Mapping[str, list[str]] | None = None) -> Path:
    """The harness's hosts and groups (default primary: db1, standby: db2) without its
    ControlPath, so the engine's per-run ControlPersist directory is used."""
    groups = groups or {"primary": ["db1"], "standby": ["db2"]}
    data = {"all": {
        "hosts": {name: connection_vars(harness, name) for name in harness.hosts},
        "children": {g: {"hosts": {m: None for m in members}} for g, members in groups.items()},
    }}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def control_dir(run_dir: Path) -> str:
    """Where engine/connections.py keeps a run's ControlPersist sockets."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return str(Path(tempfile.gettempdir()) / f"drdrill-cp-{digest}")
