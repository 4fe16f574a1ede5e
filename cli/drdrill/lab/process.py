"""Long-lived lab daemons that are not PostgreSQL (haproxy, etcd, Patroni): start, find, stop.

There is no systemd in the lab: drdrill starts each daemon itself, in its own session (a
Ctrl-C at the terminal never reaches it), as the lab's unprivileged account when run as root,
with stdout and stderr appended to a log file and its pid in a pid file — so a later
``drdrill lab down`` in another process finds and stops it. A pid file is trusted only while
``/proc/<pid>/cmdline`` still names the daemon (pids are reused).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from drdrill.errors import LabError
from drdrill.executors import proctree
from drdrill.executors.proctree import descendants
from drdrill.lab.osuser import OsUser


def _reap(pid: int) -> None:
    """Collect our own exited child, so it does not linger as a zombie in a long parent."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (executors/proctree.alive: a zombie whose threads are all gone
    is dead; reaped here when it is our child)."""
    if proctree.alive(pid):
        return True
    _reap(pid)
    return False


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The live pid in ``pid_file`` whose command line contains ``marker``, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not alive(pid) or not any(marker in part for part in cmdline(pid)):
        return None
    return pid


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def kill_tree(pid: int, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Signal ``pid`` and its descendants, wait up to ``timeout``, then SIGKILL what is left
    and wait again. True when every one of them is gone."""
    tree = [pid, *descendants(pid)]
    _signal_all(tree, sig)
    if _wait_gone(tree, timeout):
        return True
    _signal_all([p for p in tree if alive(p)], signal.SIGKILL)
    return _wait_gone(tree, 5.0)


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def find_binary(env_var: str, name: str, fallback: str, hint: str) -> Path:
    """``$env_var`` if set, else ``name`` on PATH, else ``fallback`` (Debian puts some
    daemons in /usr/sbin, off an ordinary user's PATH); LabError with ``hint`` (the package
    to install) when none is executable."""
    explicit = os.environ.get(env_var)
    candidates = [explicit] if explicit else [shutil.which(name), fallback]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    where = (f"{env_var}={explicit} is not executable" if explicit else
             f"{name} not found (looked at PATH and {Path(fallback).parent})")
    raise LabError(where, hint=hint)


def spawn(argv: Sequence[str], *, log_file: Path, pid_file: Path, user: OsUser,
          cwd: Path | None = None, env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` (an argv list, never a shell) detached in its own session as ``user``,
    output appended to ``log_file``; writes and returns its pid."""
    switch = os.geteuid() == 0 and user.uid != 0  # as root: drop to the lab's account
    with open(log_file, "ab") as log:
        user.own(log_file)
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=str(cwd or "/"),
                                    start_new_session=True, close_fds=True,
                                    env=dict(env) if env is not None else None,
                                    user=user.uid if switch else None,
                                    group=user.gid if switch else None,
                                    extra_groups=[] if switch else None)
        except OSError as exc:
            raise LabError(f"cannot start {Path(argv[0]).name}: {exc}") from exc
    pid_file.write_text(f"{proc.pid}\n")
    pid_file.chmod(0o644)
    return proc.pid


def log_tail(log_file: Path, lines: int = 8) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, pid: int, what: str, log_file: Path,
              timeout: float) -> None:
    """Wait until ``host:port`` accepts; LabError with the log's tail when ``pid`` exits
    first or the port stays closed past ``timeout``."""
    deadline = time.monotonic() + timeout
    while not port_accepts(host, port):
        if not alive(pid):
            raise LabError(f"{what} exited at start-up: {log_tail(log_file)}",
                           hint=f"its log: {log_file}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not accept on {host}:{port} within {timeout:.0f}s: "
                           f"{log_tail(log_file)}", hint=f"its log: {log_file}")
        time.sleep(0.05)
