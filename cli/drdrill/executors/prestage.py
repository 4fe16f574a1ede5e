"""One attempt of a playbook step: prepared, released once, waited for — or discarded.

Pre-staged (``request.prestage``): ansible-playbook is started at ``prepare`` — interpreter,
ansible, inventory and the playbook loaded, callbacks and the first play set up — and our
callback plugin (ansible_plugins/callback/drdrill_release.py) holds it just before the
first task, on a unix socket, until ``go``. The step's start (step_started) is the release
instant and its timeout counts from there; the ~0.7 s of ansible start-up is paid before
the step is due. The real playbook runs unchanged (no wrapper: playbook_dir, group_vars,
relative paths, events, checkpoints, facts and ``[t0]`` parsing are exactly as without
pre-staging). Not pre-staged: the process starts at ``go`` (the behaviour before).

Never released (abort, skip, no-go, Ctrl-C, a failure earlier, rollback): ``discard``
closes the socket — the callback then exits — and kills the attempt's process tree; a
SIGKILLed drdrill closes the socket too, so a prepared process never outlives its run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner

from drdrill.executors.ansible import (
    RUNNER_SETTINGS,
    _Attempt,
    _end_ansible_processes,
    _journal_connections,
    _warm_hosts,
    _write_private,
    safe_env,
    scrub_step_dir,
)
from drdrill.executors.base import StepOutcome, StepRequest

PLUGIN_DIR = Path(__file__).parent / "ansible_plugins" / "callback"
PLUGIN_NAME = "drdrill_release"
READY_POLL_S = 0.02  # release asked before the process is ready: how often to look again
JOIN_S = 15.0  # bound on waiting for the runner thread of a discarded attempt


@dataclass(frozen=True)
class Ready:
    """What the held process said when it reached the release point."""

    pid: int
    wall: float  # UTC epoch
    mono: float  # time.monotonic() (CLOCK_MONOTONIC is shared by every process)
    loaded_s: float  # seconds from the callback's load to the release point


def release_env(socket_path: str) -> dict[str, str]:
    """Load our callback beside whatever the environment enables (ansible-runner adds its
    own callback directory to ANSIBLE_CALLBACK_PLUGINS after ours)."""
    enabled = [c for c in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
    return {"ANSIBLE_CALLBACK_PLUGINS": str(PLUGIN_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, PLUGIN_NAME]),
            "DRDRILL_RELEASE_SOCKET": socket_path}


class _ReleasePoint:
    """Our end of the socket the held process waits on. A thread accepts the process's
    ``ready`` line (journaled as step_prepared by ``on_ready``); ``go`` answers it."""

    def __init__(self, on_ready: Callable[[Ready], None]) -> None:
        # unix socket paths are limited to ~108 bytes: not under the (deep) run directory
        self.path = str(Path(tempfile.gettempdir()) / f"drdrill-rl-{secrets.token_hex(6)}")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self._listener.listen(1)
        self._conn: socket.socket | None = None
        self.ready: Ready | None = None
        self.ready_event = threading.Event()
        self._on_ready = on_ready
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="drdrill-release-point")
        self._thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
            # one connection is all there is: drop the path now, so not even a SIGKILL of
            # drdrill (no cleanup runs) leaves it behind once the process was ready
            Path(self.path).unlink(missing_ok=True)
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(256)
                if not chunk:
                    conn.close()
                    return
                line += chunk
        except OSError:  # closed by close(): never released
            return
        _, pid, wall, mono, loaded = line.decode().split()
        self._conn = conn
        self.ready = Ready(int(pid), float(wall), float(mono), float(loaded))
        self.ready_event.set()
        self._on_ready(self.ready)

    def go(self) -> bool:
        """Release the held process; False when it is not (or no longer) there."""
        if self._conn is None:
            return False
        try:
            self._conn.sendall(b"go\n")
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Stop listening, and hang up on a held process (it exits when not released)."""
        for sock in (self._conn, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        Path(self.path).unlink(missing_ok=True)


class PlaybookAttempt:
    """See the module docstring. ``go`` is non-blocking, so a parallel group can release
    several prepared members back to back; ``release`` is ``go`` + ``wait``."""

    def __init__(self, request: StepRequest) -> None:
        self.request = request
        request.step_dir.mkdir(parents=True, exist_ok=True)
        self.vars_file = request.step_dir / "extravars.json"
        self.secret_file = request.step_dir / ".secret-vars.json"
        _write_private(self.vars_file, request.extra_vars)
        # ansible-runner 2.4 discards a ``settings=`` argument when env/settings is absent
        # (prepare_env resets it to {}), so the 0.2 s cancel/timeout check must live there.
        (request.step_dir / "env").mkdir(exist_ok=True)
        _write_private(request.step_dir / "env" / "settings", RUNNER_SETTINGS)
        if request.secret_vars:
            _write_private(self.secret_file, request.secret_vars)
        self.attempt = _Attempt(request, None)
        self.prepared_at = time.monotonic()
        self.released_at: float | None = None
        self.waited_ready_s = 0.0
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._point: _ReleasePoint | None = None
        self._outcome: StepOutcome | None = None
        self._finished = False
        self._warm: dict[str, bool] = {}
        if request.prestage:
            self.attempt.hold = threading.Event()  # no task event before step_started
            self._point = _ReleasePoint(self._journal_ready)
            self._start()

    @property
    def staged(self) -> bool:
        return self._point is not None

    @property
    def ready(self) -> Ready | None:
        return None if self._point is None else self._point.ready

    def wait_ready(self, timeout_s: float) -> bool:
        """True once a release will not wait: the process is held at its release point,
        or already ended (a broken playbook), or it is not pre-staged."""
        point, deadline = self._point, time.monotonic() + timeout_s
        while point is not None and not point.ready_event.is_set():
            if self._thread is None or not self._thread.is_alive():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            point.ready_event.wait(min(remaining, READY_POLL_S))
        return True

    def _start(self) -> None:
        request = self.request
        self._warm = _warm_hosts(request)
        cmdline_args = f"-e @{self.vars_file}"
        if request.secret_vars:
            cmdline_args += f" -e @{self.secret_file}"
        env = safe_env(request)
        if self._point is not None:
            env.update(release_env(self._point.path))
        self._thread, self._runner = ansible_runner.run_async(
            private_data_dir=str(request.step_dir), playbook=str(request.playbook),
            inventory=str(request.inventory.path.resolve()), cmdline=cmdline_args,
            envvars=env, settings=dict(RUNNER_SETTINGS), suppress_env_files=True,
            quiet=True, ident="run", event_handler=self.attempt.event_handler,
            cancel_callback=self.attempt.cancel_callback)

    def _journal_ready(self, ready: Ready) -> None:
        step = self.request.step
        self.request.emit("step_prepared", {
            "index": step.index, "name": step.name, "attempt": _attempt_no(self.request),
            "phase": self.request.phase, "pid": ready.pid,
            "ready_s": round(ready.mono - self.prepared_at, 6),
            "loaded_s": round(ready.loaded_s, 6)}, at_wall=ready.wall)

    def go(self, on_release: Callable[[float], None] | None = None,
           cancel: threading.Event | None = None) -> float:
        """Release now: ``on_release(time.monotonic() of the release)`` journals the step's
        start; the timeout counts from that instant. ``cancel`` (a parallel member's own
        flag) replaces the request's from now on. Returns the release instant."""
        if cancel is not None:
            self.attempt.cancel_event = cancel
        now = time.monotonic()
        self.released_at = now
        if self.request.timeout_s is not None:
            self.attempt.deadline = now + self.request.timeout_s
        point = self._point
        if point is not None and point.ready_event.is_set():
            point.go()  # the common case: prepared in time, released at once
            self._announce(on_release, now)
            return now
        self._announce(on_release, now)
        if point is None:
            self._start()
            return now
        while not point.ready_event.wait(READY_POLL_S):  # released before it was ready
            if self._thread is None or not self._thread.is_alive():
                return now  # it died (or was killed by its timeout/cancel) first
        self.waited_ready_s = time.monotonic() - now
        point.go()
        return now

    def _announce(self, on_release: Callable[[float], None] | None, now: float) -> None:
        try:
            if on_release is not None:
                on_release(now)
        finally:
            if self.attempt.hold is not None:
                self.attempt.hold.set()

    def wait(self) -> StepOutcome:
        """Block until the playbook ends; the step's outcome."""
        if self._outcome is not None:
            return self._outcome
        assert self._thread is not None, "wait() before go()"
        try:
            self._thread.join()
        finally:
            self._finish()
        self._outcome = self._verdict()
        return self._outcome

    def release(self, on_release: Callable[[float], None] | None = None,
                cancel: threading.Event | None = None) -> StepOutcome:
        self.go(on_release, cancel)
        return self.wait()

    def discard(self) -> None:
        """Never released: end the held process and its tree, remove what it left. Safe to
        call twice, and after ``wait`` (then it does nothing)."""
        if self._finished or self.released_at is not None:
            return
        self.attempt.discarded = True
        if self.attempt.hold is not None:
            self.attempt.hold.set()
        if self._point is not None:
            self._point.close()  # the callback exits when hung up on
        _end_ansible_processes(str(self.vars_file))
        if self._thread is not None:
            self._thread.join(JOIN_S)
        self._finish()
        shutil.rmtree(self.request.step_dir, ignore_errors=True)  # nothing ran: no evidence
        with contextlib.suppress(OSError):
            self.request.step_dir.parent.rmdir()  # the step's dir, when no other attempt

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._point is not None:
            self._point.close()
        self.secret_file.unlink(missing_ok=True)
        if self.released_at is not None:
            _journal_connections(self.request, self._warm, self.attempt.first_task_s)
        scrub_step_dir(self.request.step_dir, self.request.secret_vars)

    def _verdict(self) -> StepOutcome:
        attempt, runner, request = self.attempt, self._runner, self.request
        if attempt.timed_out:
            return StepOutcome("timeout", f"timed out after {request.timeout_s:g}s", runner.rc)
        if attempt.cancelled:
            return StepOutcome("aborted", "cancelled", runner.rc)
        if runner.status == "successful":
            return StepOutcome("ok", None, runner.rc)
        status = f"playbook {runner.status} (rc={runner.rc})"
        error = f"{attempt.failure} [{status}]" if attempt.failure else status
        return StepOutcome("failed", error, runner.rc)


def _attempt_no(request: StepRequest) -> int:
    name = request.step_dir.name
    return int(name.rsplit("-", 1)[1]) if name.startswith("attempt-") else 1
