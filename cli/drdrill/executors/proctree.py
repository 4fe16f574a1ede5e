"""Find and end a process tree. ansible's workers call setsid, so killing the process group
(what ansible-runner does) leaves them and their children running: walk /proc instead."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def _stat_fields() -> Iterator[tuple[int, list[str]]]:
    """Each live process's /proc/<pid>/stat fields after the command name (state, ppid,
    pgrp, session, ...): the name (field 2) may contain spaces and parens."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat[stat.rfind(")") + 2:].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, fields in _stat_fields():
        children.setdefault(int(fields[1]), []).append(pid)
    return children


def session_members(sid: int) -> list[int]:
    """Every live process in session ``sid`` (a double-forked child leaves the tree, not
    the session)."""
    return [pid for pid, fields in _stat_fields() if len(fields) > 3 and int(fields[3]) == sid]


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (not ``pid`` itself), parents before children."""
    tree = _children_map()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def is_stopped(pid: int) -> bool | None:
    """True when ``pid`` is stopped (SIGSTOP, state T/t: a frozen lab process), False when it
    runs, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0] in ("T", "t")


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def kill_tree(root: int, include_root: bool = True, grace_s: float = 0.5) -> list[int]:
    """SIGTERM the whole tree under ``root`` (collected before any dies, so nothing is
    reparented out of sight), then SIGKILL what is left after ``grace_s``. Returns pids."""
    pids = descendants(root) + ([root] if include_root else [])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signalled = [p for p in pids if _signal(p, sig)]
        if not signalled:
            break
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(alive(p) for p in signalled):
            time.sleep(0.02)
    return pids


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _state_of(stat_path: Path) -> str | None:
    try:
        stat = stat_path.read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def alive(pid: int) -> bool:
    """True while any thread of ``pid`` runs. A zombie leader is not enough to call it dead:
    when a threaded process (haproxy, etcd) exits, its main thread shows ``Z`` while the
    other threads still exit, and its sockets and files stay open until the last one is
    gone (a port still accepted a connection after haproxy "had died")."""
    state = _state_of(Path(f"/proc/{pid}/stat"))
    if state is None:
        return False
    if state != "Z":
        return True
    try:
        tasks = [t for t in Path(f"/proc/{pid}/task").iterdir() if t.name != str(pid)]
    except OSError:
        return False
    return any(_state_of(t / "stat") not in (None, "Z", "X") for t in tasks)


def processes_mentioning(*needles: str) -> list[int]:
    """Live processes (other than this one) whose command line contains every needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        line = cmdline(int(entry.name))
        if line and all(n in line for n in needles) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
