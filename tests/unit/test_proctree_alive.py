"""proctree.alive: a process is gone only when its last thread is.

A threaded daemon (haproxy runs one thread per core) that exits shows its main thread as a
zombie while the other threads still exit, with its sockets still open: a port "of a dead
haproxy" accepted a connection. Here a real process reproduces it: its main thread calls
pthread_exit while a second thread still sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from drdrill.executors import proctree
from drdrill.lab import process

LEADER_EXITS_FIRST = (
    "import ctypes, threading, time\n"
    "threading.Thread(target=time.sleep, args=(1.5,)).start()\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2:].split()[0]


def _wait(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_zombie_leader_with_a_live_thread_is_alive_until_the_thread_ends() -> None:
    proc = subprocess.Popen([sys.executable, "-c", LEADER_EXITS_FIRST])
    try:
        assert _wait(lambda: _state(proc.pid) == "Z"), "the main thread never exited"
        assert proctree.alive(proc.pid)
        assert process.alive(proc.pid)  # the lab's copy agrees (and does not reap early)
        assert proc.poll() is None  # the kernel too: the process has not exited
        assert _wait(lambda: not proctree.alive(proc.pid))
        assert _wait(lambda: proc.poll() is not None)
    finally:
        proc.kill()
        proc.wait()


def test_gone_and_running_processes() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert proctree.alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not proctree.alive(proc.pid)
