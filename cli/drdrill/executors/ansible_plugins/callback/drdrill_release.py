"""The release point of a pre-staged playbook step (drdrill executors/prestage.py).

ansible-playbook is started ahead of time on the step's real playbook. When its first task
is about to be queued (the interpreter, ansible, the inventory, the playbook and the first
play are loaded by then; nothing has touched a host), this callback connects to drdrill's
unix socket (``DRDRILL_RELEASE_SOCKET``), says it is ready, and blocks until drdrill
answers ``go``. A playbook that ends without a task (no host matched) is held at its end.
Anything else — ``stop``, or the socket closing because drdrill died — ends this process
at once, so a prepared step can never outlive the run that prepared it. Without the
environment variable the callback does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

ENV_SOCKET = "DRDRILL_RELEASE_SOCKET"
EXIT_NOT_RELEASED = 3


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "drdrill_release"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._socket_path = os.environ.get(ENV_SOCKET, "")
        self._started = time.monotonic()
        self._released = not self._socket_path

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._hold()

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._hold()

    def _hold(self) -> None:
        if self._released:
            return
        self._released = True
        _wait_for_release(self._socket_path, time.monotonic() - self._started)


def _wait_for_release(path: str, loaded_s: float) -> None:
    """Say ready (pid, wall and monotonic instants, seconds since start-up), then block."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        conn.sendall(f"ready {os.getpid()} {time.time():.6f} {time.monotonic():.6f} "
                     f"{loaded_s:.6f}\n".encode())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk:
                break
            answer += chunk
    except OSError:
        answer = b""
    finally:
        conn.close()
    if answer.strip() != b"go":
        os._exit(EXIT_NOT_RELEASED)  # never released: leave nothing behind
