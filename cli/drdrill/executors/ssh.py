"""Commands on remote hosts over SSH with paramiko — the only module that imports paramiko.

Fast, strict, timed checks that need no playbook (preflight, ``ssh`` probes):

- Host keys are checked strictly against one known_hosts file (``load_host_keys`` and a
  reject policy). An unknown or changed key raises :class:`HostKeyRejected` naming the host
  and the SHA256 fingerprint of the key it offered. ``accept_new_host_keys`` (off by default)
  accepts and records *unknown* keys, like OpenSSH's ``accept-new``; a changed key is always
  refused.
- Every network wait is bounded: TCP connect, SSH banner, key exchange, authentication,
  channel open, and the command itself run against one deadline. A dead host costs at most
  its timeout. Commands run with a pty so that closing the channel at the deadline also
  ends the remote command (without a pty it would keep running); with a pty stderr arrives
  merged into stdout.
- argv lists are quoted with ``shlex.join``: runbook values never reach a shell unquoted.
- :class:`SshPool` keeps one warm connection per host (opened in preflight, reused by probes
  and steps, re-opened after a failure or a timeout).
"""

from __future__ import annotations

import logging
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import paramiko

from drdrill.errors import BadInput
from drdrill.executors.ssh_target import (
    ClockSample,
    CommandResult,
    ConnectInfo,
    HostKeyRejected,
    SshAuthFailed,
    SshError,
    SshTarget,
    SshTimeout,
    SshTimeouts,
    SshUnreachable,
    is_local,
    target_from_vars,
)

__all__ = [  # the SSH API: targets and errors live in ssh_target (no paramiko there)
    "ClockSample",
    "CommandResult",
    "ConnectInfo",
    "HostKeyRejected",
    "SshAuthFailed",
    "SshError",
    "SshPool",
    "SshTarget",
    "SshTimeout",
    "SshTimeouts",
    "SshUnreachable",
    "connect",
    "exec_on",
    "is_local",
    "run_command",
    "target_from_vars",
]

_POLL_S = 0.005


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Reject unknown keys naming host and fingerprint; optionally accept and record them."""

    def __init__(self, target: SshTarget, accept_new: bool) -> None:
        self.target = target
        self.accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise HostKeyRejected(self.target.host, self.target.address, key.fingerprint,
                                  "unknown", self.target.known_hosts)
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.target.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.target.known_hosts.open("a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _remaining(deadline: float, budget: float) -> float:
    return max(0.05, min(budget, deadline - time.monotonic()))


def connect(target: SshTarget, accept_new_host_keys: bool = False,
            deadline: float | None = None) -> tuple[paramiko.SSHClient, ConnectInfo]:
    """Open an authenticated connection; every phase bounded by its timeout and ``deadline``."""
    t = target.timeouts
    if deadline is None:
        deadline = time.monotonic() + t.connect_s + t.banner_s + t.auth_s
    if not target.known_hosts.is_file() and not accept_new_host_keys:
        raise SshError(target.host, f"known_hosts file {target.known_hosts} not found",
                       "set drdrill_known_hosts or UserKnownHostsFile in the inventory")
    start = time.monotonic()
    try:
        sock = socket.create_connection((target.address, target.port),
                                        timeout=_remaining(deadline, t.connect_s))
    except TimeoutError as exc:
        raise SshUnreachable(target.host, f"no TCP answer from {target.address}:{target.port}"
                                          f" within {time.monotonic() - start:.1f}s") from exc
    except OSError as exc:
        raise SshUnreachable(target.host, f"cannot connect to {target.address}:{target.port}"
                                          f": {exc.strerror or exc}") from exc
    tcp_s = time.monotonic() - start
    client = paramiko.SSHClient()
    try:
        if target.known_hosts.is_file():
            client.load_host_keys(str(target.known_hosts))
        client.set_missing_host_key_policy(_HostKeyPolicy(target, accept_new_host_keys))
        client.connect(
            target.address, port=target.port, username=target.user, sock=sock,
            key_filename=str(target.key_file) if target.key_file else None,
            allow_agent=False, look_for_keys=target.key_file is None,
            timeout=_remaining(deadline, t.connect_s),
            banner_timeout=_remaining(deadline, t.banner_s),
            auth_timeout=_remaining(deadline, t.auth_s),
            channel_timeout=t.channel_s)
    except HostKeyRejected:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyRejected(target.host, target.address, exc.key.fingerprint, "changed",
                              target.known_hosts) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise SshAuthFailed(target.host, f"{target.user}@{target.address} refused our key"
                                         f" ({target.key_file or 'default keys'}): {exc}") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise SshUnreachable(target.host, f"no SSH handshake with {target.address}:"
                                          f"{target.port} within "
                                          f"{time.monotonic() - start:.1f}s (sshd hung or not"
                                          f" SSH?): {exc or type(exc).__name__}") from exc
    except BaseException:
        client.close()
        raise
    return client, ConnectInfo(tcp_s, time.monotonic() - start - tcp_s)


def _transport(client: paramiko.SSHClient, host: str) -> paramiko.Transport:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise SshUnreachable(host, "connection closed")
    return transport


def exec_on(client: paramiko.SSHClient, host: str, command: str, timeout: float,
            pty: bool = True, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run ``command`` (a shell string) and wait for it against a deadline (FIELD-NOTES:
    ``recv_exit_status`` ignores timeouts). On expiry the channel is closed — with a pty that
    hangs up the remote command too — and SshTimeout is raised."""
    deadline = time.monotonic() + timeout
    try:
        chan = _transport(client, host).open_session(timeout=_remaining(deadline, timeout))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SshTimeout(host, f"no channel within {timeout:.1f}s (host lost?): {exc}") from exc
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), chan.close)
    watchdog.daemon = True
    watchdog.start()
    out, err = bytearray(), bytearray()
    try:
        if pty:
            chan.get_pty(width=200)
        chan.settimeout(1.0)
        chan.exec_command(command)
        if stdin:
            chan.sendall(stdin)
        while True:
            busy = False
            while chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            if chan.exit_status_ready() and not (chan.recv_ready() or chan.recv_stderr_ready()):
                break
            if chan.closed or time.monotonic() >= deadline:
                raise SshTimeout(host, f"command did not finish within {timeout:.1f}s")
            if not busy:
                select.select([chan], [], [], min(_POLL_S, max(0.0, deadline - time.monotonic())))
        code = chan.recv_exit_status()
    except paramiko.SSHException as exc:
        if time.monotonic() >= deadline or chan.closed:
            raise SshTimeout(host, f"command did not finish within {timeout:.1f}s") from exc
        raise SshUnreachable(host, f"channel failed: {exc}") from exc
    finally:
        watchdog.cancel()
        chan.close()
    return code, _text(bytes(out), pty), _text(bytes(err), pty)


def _text(data: bytes, pty: bool) -> str:
    text = data.decode(errors="replace")
    return text.replace("\r\n", "\n") if pty else text


_FLOAT = re.compile(r"^\d+\.\d+$")


class SshPool:
    """One warm connection per host, shared by threads (paramiko multiplexes channels).

    A connection that failed or saw a timeout is dropped and re-opened on next use.
    """

    def __init__(self, accept_new_host_keys: bool = False) -> None:
        # paramiko's transport threads log failures (tracebacks included) as errors; they
        # reach the caller as exceptions, so keep them off stderr (idempotent, no level change)
        paramiko_log = logging.getLogger("paramiko")
        if not paramiko_log.handlers:
            paramiko_log.addHandler(logging.NullHandler())
        self.accept_new_host_keys = accept_new_host_keys
        self._clients: dict[SshTarget, paramiko.SSHClient] = {}
        self._locks: dict[SshTarget, threading.Lock] = {}
        self._lock = threading.Lock()
        self.connect_times: dict[str, list[float]] = {}

    def __enter__(self) -> SshPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _host_lock(self, target: SshTarget) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(target, threading.Lock())

    def is_warm(self, target: SshTarget) -> bool:
        client = self._clients.get(target)
        transport = client.get_transport() if client else None
        return bool(transport and transport.is_active())

    def connect(self, target: SshTarget, deadline: float | None = None) -> ConnectInfo | None:
        """Open the host's connection unless a live one exists; None when already warm."""
        with self._host_lock(target):
            if self.is_warm(target):
                return None
            self.discard(target)
            client, info = connect(target, self.accept_new_host_keys, deadline)
            self._clients[target] = client
            self.connect_times.setdefault(target.host, []).append(info.total_s)
            return info

    def discard(self, target: SshTarget) -> None:
        client = self._clients.pop(target, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for target in list(self._clients):
            self.discard(target)

    def run_shell(self, target: SshTarget, command: str, timeout: float,
                  pty: bool = True, stdin: bytes | None = None) -> CommandResult:
        """Run ``command`` as the remote shell reads it; ``timeout`` bounds connect + run."""
        start = time.monotonic()
        deadline = start + timeout
        info = self.connect(target, deadline)
        connect_s = info.total_s if info else 0.0
        client = self._clients.get(target)
        if client is None:
            raise SshUnreachable(target.host, "connection closed")
        try:
            code, out, err = exec_on(client, target.host, command,
                                     max(0.05, deadline - time.monotonic()), pty, stdin)
        except SshError:
            self.discard(target)
            raise
        return CommandResult(code, out, err, time.monotonic() - start, connect_s)

    def open_channel(self, target: SshTarget, timeout: float) -> paramiko.Channel:
        """A new session channel on the host's warm connection (opened if needed), for
        callers that stream a command themselves (executors/command.py)."""
        deadline = time.monotonic() + timeout
        self.connect(target, deadline)
        client = self._clients.get(target)
        if client is None:
            raise SshUnreachable(target.host, "connection closed")
        try:
            return _transport(client, target.host).open_session(
                timeout=_remaining(deadline, timeout))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.discard(target)
            raise SshTimeout(target.host, f"no channel within {timeout:.1f}s (host lost?): "
                                          f"{exc}") from exc

    def run(self, target: SshTarget, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run ``argv``, each word quoted (``shlex.join``): no value is read by the shell."""
        if not argv:
            raise BadInput(f"{target.host}: empty command")
        return self.run_shell(target, shlex.join(str(a) for a in argv), timeout)

    def clock_offset(self, target: SshTarget, timeout: float, samples: int = 3) -> ClockSample:
        """Remote clock − local clock from ``date +%s.%N``: the remote shell prints ``ready``,
        then one date per line we send; the sample with the shortest round trip wins and is
        corrected by half of it: offset = t_remote − (t_send + rtt/2)."""
        start = time.monotonic()
        deadline = start + timeout
        self.connect(target, deadline)
        client = self._clients[target]
        script = (f"stty -echo 2>/dev/null; echo ready; for i in $(seq {samples}); "
                  "do read _ || exit 1; date +%s.%N; done")
        chan = _transport(client, target.host).open_session(
            timeout=_remaining(deadline, timeout))
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), chan.close)
        watchdog.daemon = True
        watchdog.start()
        best: ClockSample | None = None
        try:
            chan.get_pty()
            chan.settimeout(max(0.05, deadline - time.monotonic()))
            chan.exec_command(script)
            _read_until(chan, lambda b: b"ready\n" in b.replace(b"\r", b""))
            for _ in range(samples):
                t_send, m_send = time.time(), time.monotonic()
                chan.sendall(b"\n")
                line = _read_until(chan, lambda b: bool(_last_float(b)))
                rtt = time.monotonic() - m_send
                remote = float(_last_float(line) or 0)
                sample = ClockSample(remote - (t_send + rtt / 2), rtt)
                if best is None or sample.rtt_s < best.rtt_s:
                    best = sample
        except (OSError, paramiko.SSHException) as exc:
            self.discard(target)
            raise SshTimeout(target.host, f"clock measurement failed or timed out "
                                          f"({timeout:.1f}s): {exc}") from exc
        finally:
            watchdog.cancel()
            chan.close()
        assert best is not None
        return best


def _last_float(data: bytes) -> str | None:
    complete = data.decode(errors="replace").replace("\r", "").split("\n")[:-1]
    for line in reversed(complete):
        if _FLOAT.match(line.strip()):
            return line.strip()
    return None


def _read_until(chan: paramiko.Channel, done: Any) -> bytes:
    data = bytearray()
    while not done(bytes(data)):
        chunk = chan.recv(4096)  # bounded by chan.settimeout; closed by the watchdog
        if not chunk:
            raise paramiko.SSHException("channel closed before the expected output")
        data += chunk
    return bytes(data)


def run_command(target: SshTarget, argv: Sequence[str], timeout: float,
                pool: SshPool | None = None) -> CommandResult:
    """``pool.run`` on the given pool, or on a one-shot connection closed afterwards."""
    if pool is not None:
        return pool.run(target, argv, timeout)
    with SshPool() as once:
        return once.run(target, argv, timeout)
