"""Preflight at the start of every run (and resume), and connections kept warm for it.

The runbook's hosts get paramiko sessions during preflight that probes reuse, and Ansible
steps share one ControlPersist directory per run, so the steps between T0 and service
restored do not pay SSH handshakes. Keepalives bound a hung connection (a ControlPersist
connection opened before a partition otherwise hangs); the masters are ended with the run.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drdrill.engine.context import RunContext
from drdrill.engine.preflight import run_preflight, runbook_hosts
from drdrill.executors.proctree import cmdline, kill_tree


def _control_dir(ctx: RunContext) -> Path:
    # unix socket paths are limited to ~108 bytes: keep it short, unique per run
    digest = hashlib.sha256(str(ctx.run_dir.resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"drdrill-cp-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def ansible_ssh_env(control_dir: Path) -> dict[str, str]:
    return {
        "ANSIBLE_SSH_ARGS": ("-o ControlMaster=auto -o ControlPersist=300s "
                             "-o ServerAliveInterval=2 -o ServerAliveCountMax=2"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        # a predictable socket per host, so each step can journal whether it was warm
        "ANSIBLE_SSH_CONTROL_PATH": f"{control_dir}/{CONTROL_SOCKET_PATTERN}",
        "ANSIBLE_PIPELINING": "True",
    }


CONTROL_SOCKET_PATTERN = "%%h-%%p-%%r"  # ansible %-formats it once: ssh sees %h-%p-%r


def _end_control_masters(control_dir: Path) -> None:
    marker = str(control_dir)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and marker in cmdline(int(entry.name)):
            kill_tree(int(entry.name))
    shutil.rmtree(control_dir, ignore_errors=True)


def _warm_ansible(ctx: RunContext, hosts: list[str]) -> float | None:
    from drdrill.executors.ansible import warm_up

    return warm_up(ctx.inventory, hosts, ctx.ansible_env, ctx.run_dir / "steps" / "0-warm-up")


@contextmanager
def open_warm_connections(ctx: RunContext) -> Iterator[str | None]:
    """Run preflight (journaled) and keep its connections for the run. Yields None when the
    run may go on, or the reason it must not."""
    from drdrill.executors.ssh import SshPool

    control_dir = _control_dir(ctx)
    ctx.ansible_env = ansible_ssh_env(control_dir)
    pool = SshPool(accept_new_host_keys=False)
    try:
        hosts = runbook_hosts(ctx.runbook, ctx.inventory)
        if hosts:
            report = run_preflight(ctx.runbook, ctx.inventory, pool, ctx.emit)
            if not report.ok:
                failed = "; ".join(f"{r.host} {r.check}: {r.detail}" for r in report.failures)
                if ctx.mode != "incident":
                    yield f"preflight failed: {failed}"
                    return
                # an outage is why incident mode runs: a dead or unreachable host is the
                # situation, not a reason to refuse; the steps deal with it (fencing)
                ctx.emit("preflight_ignored", {
                    "reason": "incident mode",
                    "failed": [f"{r.host} {r.check}: {r.detail}" for r in report.failures]})
                down = {r.host for r in report.failures}
                hosts = [h for h in hosts if h not in down]
            ctx.emit("connections", {
                "first_connect_s": dict(pool.connect_times),
                "ansible_warm_up_s": _warm_ansible(ctx, hosts) if hosts else None})
        ctx.ssh_pool = pool
        yield None
    finally:
        pool.close()
        _end_control_masters(control_dir)
