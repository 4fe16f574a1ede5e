"""SSH targets, results and errors: plain data built from inventory variables. Kept apart
from ``ssh.py`` so modules that only describe hosts never import paramiko."""

from __future__ import annotations

import getpass
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdrill.errors import EXIT_ABORTED, BadInput, DrdrillError

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


class SshError(DrdrillError):
    """A host could not be reached, verified, authenticated or did not answer in time."""

    exit_code = EXIT_ABORTED

    def __init__(self, host: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{host}: {message}", hint)
        self.host = host


class SshUnreachable(SshError):
    """No TCP connection, or no SSH handshake (a hung sshd) within the timeout."""


class HostKeyRejected(SshError):
    """The host offered a key that known_hosts does not list (``unknown``) or contradicts
    (``changed``). ``fingerprint`` is the offered key's SHA256 fingerprint."""

    def __init__(self, host: str, address: str, fingerprint: str, reason: str,
                 known_hosts: Path) -> None:
        what = ("is not in" if reason == "unknown" else "does not match the key in")
        hint = (f"verify the fingerprint out of band, then add the key to {known_hosts} "
                "(or pass --accept-new-host-keys for a host never seen before)"
                if reason == "unknown" else
                f"if the host was legitimately re-installed, remove its old key from "
                f"{known_hosts} (ssh-keygen -R {address}) and verify the new one")
        super().__init__(host, f"host key {fingerprint} offered by {address} {what} "
                               f"{known_hosts}", hint)
        self.fingerprint = fingerprint
        self.reason = reason


class SshAuthFailed(SshError):
    """The host refused our credentials."""


class SshTimeout(SshError):
    """A command (or opening its channel) did not finish before its deadline."""


@dataclass(frozen=True)
class SshTimeouts:
    """paramiko's four timeouts, always all set (FIELD-NOTES: a blackholed address without
    ``connect`` waits ~2 min, a frozen sshd without ``banner`` 15 s)."""

    connect_s: float = 5.0
    banner_s: float = 5.0
    auth_s: float = 5.0
    channel_s: float = 5.0

    @classmethod
    def uniform(cls, seconds: float) -> SshTimeouts:
        return cls(seconds, seconds, seconds, seconds)


@dataclass(frozen=True)
class SshTarget:
    """Where and how to reach one inventory host."""

    host: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: Path | None = None
    known_hosts: Path = field(default_factory=lambda: Path(DEFAULT_KNOWN_HOSTS).expanduser())
    timeouts: SshTimeouts = SshTimeouts()

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH (and paramiko) name this host in known_hosts."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def is_local(host_vars: Mapping[str, Any]) -> bool:
    return str(host_vars.get("ansible_connection", "")) == "local"


def _option_from_args(args: str, name: str) -> str | None:
    """Value of ``-o Name=value`` / ``-oName value`` in an ssh argument string, first wins."""
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    values: list[str] = []
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words):
            values.append(words[i + 1])
        elif word.startswith("-o") and len(word) > 2:
            values.append(word[2:])
    for value in values:
        key, _, rest = value.replace("=", " ", 1).partition(" ")
        if key.lower() == name.lower() and rest.strip():
            return rest.strip().split()[0]
    return None


def target_from_vars(host: str, host_vars: Mapping[str, Any],
                     timeouts: SshTimeouts | None = None) -> SshTarget:
    """Build a target from an inventory host's Ansible variables.

    known_hosts comes from ``drdrill_known_hosts``, else ``UserKnownHostsFile`` in
    ``ansible_ssh_common_args``/``ansible_ssh_extra_args``, else ``~/.ssh/known_hosts``.
    ``drdrill_ssh_timeout`` (seconds) sets all four timeouts for that host.
    """
    def var(*names: str) -> Any:
        return next((host_vars[n] for n in names if host_vars.get(n) not in (None, "")), None)

    known = var("drdrill_known_hosts")
    if known is None:
        for args_var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            known = _option_from_args(str(host_vars.get(args_var) or ""), "UserKnownHostsFile")
            if known:
                break
    key = var("ansible_ssh_private_key_file", "ansible_private_key_file")
    if timeouts is None:
        per_host = var("drdrill_ssh_timeout")
        timeouts = SshTimeouts.uniform(float(per_host)) if per_host else SshTimeouts()
    try:
        port = int(var("ansible_port", "ansible_ssh_port") or 22)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{host}: ansible_port is not a number") from exc
    return SshTarget(
        host=host,
        address=str(var("ansible_host", "ansible_ssh_host") or host),
        port=port,
        user=str(var("ansible_user", "ansible_ssh_user") or getpass.getuser()),
        key_file=Path(str(key)).expanduser() if key else None,
        known_hosts=Path(str(known or DEFAULT_KNOWN_HOSTS)).expanduser(),
        timeouts=timeouts,
    )


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    connect_s: float  # 0.0 when a warm connection was reused

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class ConnectInfo:
    """How long opening a connection took: TCP connect, then SSH handshake + key check + auth."""

    tcp_s: float
    ssh_s: float

    @property
    def total_s(self) -> float:
        return self.tcp_s + self.ssh_s


@dataclass(frozen=True)
class ClockSample:
    """``offset_s`` = remote clock − local clock, corrected by half the round trip."""

    offset_s: float
    rtt_s: float
