"""``ssh`` probe: a command on an inventory host over the run's warm SSH connection.

Options: ``host`` (an inventory host name), exactly one of ``command`` (shell code, run as
written by the remote login shell — the runbook author's code, no value is substituted into
it) or ``argv`` (a list, each word quoted: never interpreted by the shell), ``expect_exit``
(default 0), ``expect_output`` (a regex searched in the output; stderr is merged into it by
the pty), and the spec's ``timeout`` (bounds connect + run). A host with
``ansible_connection: local`` runs the command locally.
"""

from __future__ import annotations

import re

from drdrill.errors import BadInput
from drdrill.executors.hosts import commands_for
from drdrill.executors.inventory import Inventory
from drdrill.executors.ssh import CommandResult, SshError, SshPool, SshTimeouts
from drdrill.probes.base import NO_CONTEXT, ProbeContext, ProbeResult, register_probe
from drdrill.runbook.model import ProbeSpec


class SshProbe:
    def __init__(self, spec: ProbeSpec, context: ProbeContext = NO_CONTEXT) -> None:
        label = f"ssh probe {spec.name!r}" if spec.name else "ssh probe"
        inventory = context.inventory
        if not isinstance(inventory, Inventory):
            raise BadInput(f"{label}: needs the inventory (run with -i INVENTORY)")
        pool = context.ssh_pool
        if pool is not None and not isinstance(pool, SshPool):
            raise TypeError(f"ProbeContext.ssh_pool must be an SshPool, not {type(pool)}")
        opts = spec.options
        if "host" not in opts:
            raise BadInput(f"{label}: 'host' (an inventory host name) is required")
        if ("command" in opts) == ("argv" in opts):
            raise BadInput(f"{label}: give exactly one of 'command' or 'argv'")
        self.command = str(opts["command"]) if "command" in opts else None
        self.argv = [str(a) for a in opts.get("argv", ())]
        self.expect_exit = int(opts.get("expect_exit", 0))
        pattern = opts.get("expect_output")
        try:
            self.expect_output = re.compile(str(pattern)) if pattern else None
        except re.error as exc:
            raise BadInput(f"{label}: expect_output is not a regex: {exc}") from exc
        self.timeout_s = spec.timeout_s
        self._own_pool = pool is None
        self.pool = pool if pool is not None else SshPool()
        timeouts = SshTimeouts.uniform(spec.timeout_s)
        self.runner = commands_for(inventory, str(opts["host"]), self.pool, timeouts)

    def check(self) -> ProbeResult:
        try:
            if self.command is not None:
                result: CommandResult = self.runner.run_shell(self.command, self.timeout_s)
            else:
                result = self.runner.run(self.argv, self.timeout_s)
        except SshError as exc:
            return ProbeResult(False, exc.message)
        output = (result.stdout + result.stderr).strip()
        timing = f"{result.duration_s * 1000:.0f} ms"
        if result.connect_s:
            timing += f", connect {result.connect_s * 1000:.0f} ms"
        if result.exit_code != self.expect_exit:
            return ProbeResult(False, f"{self.runner.host}: exit {result.exit_code} (expected "
                                      f"{self.expect_exit}, {timing}): {output[-160:]}")
        if self.expect_output and not self.expect_output.search(output):
            return ProbeResult(False, f"{self.runner.host}: output did not match "
                                      f"{self.expect_output.pattern!r}: {output[-160:]}")
        return ProbeResult(True, f"{self.runner.host}: exit {result.exit_code} ({timing})")

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()


def register() -> None:
    register_probe("ssh", SshProbe)
