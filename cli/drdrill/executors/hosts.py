"""Run a command on an inventory host, whatever its connection: over the SSH pool, or
locally for ``ansible_connection: local`` hosts (the embedded lab), with the same results
and errors either way."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from drdrill.errors import BadInput
from drdrill.executors.inventory import Inventory
from drdrill.executors.ssh import (
    CommandResult,
    SshError,
    SshPool,
    SshTarget,
    SshTimeout,
    SshTimeouts,
    is_local,
    target_from_vars,
)


class HostCommands(Protocol):
    host: str

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """``argv`` is never read by a shell (quoted for the remote one)."""
        ...

    def run_shell(self, command: str, timeout: float) -> CommandResult:
        """``command`` is shell code, run as written by the runbook author."""
        ...


@dataclass(frozen=True)
class LocalHost:
    host: str

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        return self._run([str(a) for a in argv], timeout)

    def run_shell(self, command: str, timeout: float) -> CommandResult:
        return self._run(["/bin/sh", "-c", command], timeout)

    def _run(self, argv: list[str], timeout: float) -> CommandResult:
        start = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SshTimeout(self.host, f"command did not finish within {timeout:.1f}s") from exc
        except OSError as exc:
            raise SshError(self.host, f"cannot run {shlex.join(argv)}: {exc.strerror}") from exc
        return CommandResult(done.returncode, done.stdout, done.stderr,
                             time.monotonic() - start, 0.0)


@dataclass(frozen=True)
class RemoteHost:
    target: SshTarget
    pool: SshPool

    @property
    def host(self) -> str:
        return self.target.host

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        return self.pool.run(self.target, argv, timeout)

    def run_shell(self, command: str, timeout: float) -> CommandResult:
        return self.pool.run_shell(self.target, command, timeout)


def commands_for(inventory: Inventory, host: str, pool: SshPool,
                 timeouts: SshTimeouts | None = None) -> LocalHost | RemoteHost:
    if host not in inventory.host_vars:
        raise BadInput(f"host {host!r} is not in the inventory {inventory.path}")
    host_vars = inventory.vars_of(host)
    if is_local(host_vars):
        return LocalHost(host)
    return RemoteHost(target_from_vars(host, host_vars, timeouts), pool)
