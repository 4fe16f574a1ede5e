"""paramiko executor against real sshd: quoting, strict host keys, bounded waits, warm pool."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from drdrill.executors.inventory import load_inventory
from drdrill.executors.ssh import (
    HostKeyRejected,
    SshPool,
    SshTarget,
    SshTimeout,
    SshTimeouts,
    SshUnreachable,
    run_command,
    target_from_vars,
)
from harness.netns import NetnsHarness


def _target(h: NetnsHarness, host: str, timeout: float = 2.0) -> SshTarget:
    inventory = load_inventory(h.inventory_path)
    return target_from_vars(host, inventory.vars_of(host), SshTimeouts.uniform(timeout))


def test_target_from_inventory_vars(ssh_hosts: NetnsHarness) -> None:
    t = _target(ssh_hosts, "db1")
    assert (t.address, t.port, t.user) == (ssh_hosts.address("db1"), 22, "root")
    assert t.key_file == ssh_hosts.client_key
    assert t.known_hosts == ssh_hosts.known_hosts  # from UserKnownHostsFile in common args
    t2 = target_from_vars("x", {"ansible_host": "10.9.9.9", "ansible_port": 2222,
                                "drdrill_known_hosts": "/k", "ansible_ssh_common_args":
                                "-o UserKnownHostsFile=/other"})
    assert (t2.known_hosts, t2.known_hosts_name) == (Path("/k"), "[10.9.9.9]:2222")


def test_run_command_quotes_argv(ssh_hosts: NetnsHarness, pool: SshPool,
                                 tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    t = _target(ssh_hosts, "db1")
    hostile = f"$(touch {marker}); touch {marker}; `touch {marker}` '\""
    result = pool.run(t, ["printf", "%s|", hostile, "two words"], timeout=5)
    assert result.exit_code == 0
    assert result.stdout == f"{hostile}|two words|"
    assert not marker.exists()
    failed = pool.run_shell(t, "echo to-err >&2; exit 7", timeout=5)
    assert failed.exit_code == 7 and "to-err" in failed.stdout  # pty: stderr merged
    once = run_command(t, ["hostname"], timeout=5)  # one-shot connection
    assert once.exit_code == 0 and once.connect_s > 0


def test_warm_connection_skips_handshake(ssh_hosts: NetnsHarness, pool: SshPool) -> None:
    t = _target(ssh_hosts, "db2")
    cold = pool.run(t, ["true"], timeout=5)
    warm = [pool.run(t, ["true"], timeout=5) for _ in range(5)]
    assert cold.connect_s > 0 and all(r.connect_s == 0 for r in warm)
    assert min(r.duration_s for r in warm) < cold.duration_s
    print(f"\ncold {cold.duration_s * 1000:.0f} ms (connect {cold.connect_s * 1000:.0f} ms), "
          f"warm median {sorted(r.duration_s for r in warm)[2] * 1000:.0f} ms")


def test_command_timeout_ends_remote_command(ssh_hosts: NetnsHarness, pool: SshPool) -> None:
    t = _target(ssh_hosts, "db1")
    start = time.monotonic()
    with pytest.raises(SshTimeout, match="db1"):
        pool.run(t, ["sleep", "30"], timeout=1.0)
    assert time.monotonic() - start <= 2.0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if "sleep 30" not in ssh_hosts.ns_exec("db1", ["ps", "-eo", "args"]).stdout:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("remote sleep survived the timeout")
    assert pool.run(t, ["true"], timeout=5).exit_code == 0  # re-opened after the failure


def test_changed_host_key_is_refused(ssh_hosts: NetnsHarness, pool: SshPool) -> None:
    h = ssh_hosts
    db1, db2 = h.host("db1"), h.host("db2")
    h.known_hosts.write_text(f"{db1.address} {db2.host_public_key}\n"
                             f"{db2.address} {db2.host_public_key}\n")
    with pytest.raises(HostKeyRejected) as err:
        pool.run(_target(h, "db1"), ["true"], timeout=5)
    assert err.value.host == "db1" and err.value.reason == "changed"
    assert db1.fingerprint in str(err.value) and "db1" in str(err.value)
    # accept_new never accepts a changed key
    with SshPool(accept_new_host_keys=True) as lenient, pytest.raises(HostKeyRejected):
        lenient.run(_target(h, "db1"), ["true"], timeout=5)


def test_unknown_host_key_refused_unless_accept_new(ssh_hosts: NetnsHarness,
                                                    pool: SshPool) -> None:
    h = ssh_hosts
    h.known_hosts.write_text(f"{h.address('db2')} {h.host('db2').host_public_key}\n")
    with pytest.raises(HostKeyRejected, match=re.escape(h.host("db1").fingerprint)) as err:
        pool.run(_target(h, "db1"), ["true"], timeout=5)
    assert err.value.reason == "unknown" and str(err.value).startswith("db1: ")
    with SshPool(accept_new_host_keys=True) as lenient:
        assert lenient.run(_target(h, "db1"), ["true"], timeout=5).exit_code == 0
    assert h.host("db1").host_public_key in h.known_hosts.read_text()
    assert pool.run(_target(h, "db1"), ["true"], timeout=5).exit_code == 0  # now known


@pytest.mark.parametrize("fault", ["hang", "blackhole", "stop_sshd", "partition"])
def test_dead_host_costs_at_most_its_timeout(ssh_hosts: NetnsHarness, fault: str) -> None:
    timeout = 2.0
    t = _target(ssh_hosts, "db1", timeout)
    with SshPool() as fresh:
        getattr(ssh_hosts, fault)("db1")
        start = time.monotonic()
        with pytest.raises((SshUnreachable, SshTimeout), match="db1"):
            fresh.run(t, ["true"], timeout=timeout)
        assert time.monotonic() - start <= timeout + 1


@pytest.mark.parametrize("fault", ["hang", "blackhole", "partition"])
def test_warm_connection_to_lost_host_is_bounded(ssh_hosts: NetnsHarness, pool: SshPool,
                                                 fault: str) -> None:
    t = _target(ssh_hosts, "db1", 2.0)
    assert pool.run(t, ["true"], timeout=5).connect_s > 0
    getattr(ssh_hosts, fault)("db1")
    start = time.monotonic()
    with pytest.raises((SshUnreachable, SshTimeout)):
        pool.run(t, ["true"], timeout=1.5)
    assert time.monotonic() - start <= 1.5 + 1
    assert not pool.is_warm(t)  # dropped: the next call re-opens


def test_clock_offset_is_near_zero(ssh_hosts: NetnsHarness, pool: SshPool) -> None:
    sample = pool.clock_offset(_target(ssh_hosts, "db1"), timeout=5)
    assert abs(sample.offset_s) < 0.5 and 0 < sample.rtt_s < 1
