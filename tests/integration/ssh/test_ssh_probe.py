"""The ``ssh`` probe kind over the warm pool."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from drdrill.errors import BadInput
from drdrill.executors.inventory import load_inventory
from drdrill.executors.ssh import SshPool
from drdrill.probes.base import ProbeContext, make_probe
from drdrill.runbook.model import ProbeSpec
from harness.netns import NetnsHarness


def _probe(h: NetnsHarness, pool: SshPool, timeout: float = 3, **options: Any) -> Any:
    context = ProbeContext(inventory=load_inventory(h.inventory_path), ssh_pool=pool)
    return make_probe(ProbeSpec("ssh", options, timeout_s=timeout, name="remote"), context)


def test_ssh_probe_checks_exit_and_output(ssh_hosts: NetnsHarness, pool: SshPool,
                                          tmp_path: Path) -> None:
    h = ssh_hosts
    ok = _probe(h, pool, host="db1", command="ip -4 -o addr show dev eth0",
                expect_output=h.address("db1").replace(".", r"\."))
    assert ok.check().ok
    assert _probe(h, pool, host="db2", argv=["test", "-d", "/nonexistent"],
                  expect_exit=1).check().ok
    wrong = _probe(h, pool, host="db2", argv=["false"]).check()
    assert not wrong.ok and "exit 1 (expected 0" in wrong.detail
    nomatch = _probe(h, pool, host="db2", command="echo standby", expect_output="^primary").check()
    assert not nomatch.ok and "did not match" in nomatch.detail
    marker = tmp_path / "pwned"
    assert _probe(h, pool, host="db1", argv=["echo", f"$(touch {marker})"]).check().ok
    assert not marker.exists()


def test_ssh_probe_on_dead_host_fails_within_timeout(ssh_hosts: NetnsHarness,
                                                     pool: SshPool) -> None:
    probe = _probe(ssh_hosts, pool, timeout=1.5, host="db1", command="true")
    assert probe.check().ok
    ssh_hosts.blackhole("db1")
    start = time.monotonic()
    result = probe.check()
    assert not result.ok and "db1" in result.detail
    assert time.monotonic() - start <= 1.5 + 1
    probe.close()


def test_ssh_probe_needs_inventory_and_known_host(ssh_hosts: NetnsHarness) -> None:
    with pytest.raises(BadInput, match="inventory"):
        make_probe(ProbeSpec("ssh", {"host": "db1", "command": "true"}))
    context = ProbeContext(inventory=load_inventory(ssh_hosts.inventory_path))
    with pytest.raises(BadInput, match="nope"):
        make_probe(ProbeSpec("ssh", {"host": "nope", "command": "true"}), context)
    with pytest.raises(BadInput, match="exactly one"):
        make_probe(ProbeSpec("ssh", {"host": "db1"}), context)
