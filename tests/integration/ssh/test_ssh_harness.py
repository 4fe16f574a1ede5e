"""The namespace harness itself: isolated, reachable only inside its subnet, faults work,
and tear-down leaves nothing behind."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.netns import NetnsHarness


def _ip_json(*argv: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, check=True)
    rows: list[dict[str, object]] = json.loads(out.stdout or "[]")
    return rows


def _tcp(h: NetnsHarness, src: str, address: str,
         port: int = 22) -> subprocess.CompletedProcess[str]:
    code = ("import socket,sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout=2).close(); print('ok')\n"
            "except OSError as e:\n"
            "    print(e.strerror or e); sys.exit(1)\n")
    return h.ns_exec(src, ["python3", "-c", code], check=False)


def test_up_down_leaves_nothing(netns_factory: Callable[..., NetnsHarness]) -> None:
    h = netns_factory(["a1", "a2", "a3"])
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert all(f"{h.prefix}{n}" in netns for n in ("a1", "a2", "a3"))
    guard = _ip_json("route", "show", "exact", h.subnet)
    assert guard and guard[0]["type"] == "unreachable"
    sshd_pids = [h.host(n).sshd.pid for n in ("a1", "a2", "a3")]  # type: ignore[union-attr]
    assert all(pid in h.ns_pids(n) for pid, n in zip(sshd_pids, ("a1", "a2", "a3"), strict=True))
    # something started "remotely" outlives sshd: tear-down must still end it
    h.ns_exec("a1", ["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 &"])
    assert len(h.ns_pids("a1")) >= 2

    h.down()
    assert h.leftovers() == []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert h.prefix not in netns
    assert _ip_json("route", "show", "root", h.subnet) == []
    assert not h.dir.exists()
    for pid in sshd_pids:  # gone, or at most a zombie (no namespace, no resources)
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_hosts_reach_each_other_and_nothing_else(ssh_hosts: NetnsHarness) -> None:
    h = ssh_hosts
    assert _tcp(h, "db1", h.address("db2")).stdout.strip() == "ok"
    assert _tcp(h, "db2", h.address("db1")).stdout.strip() == "ok"
    # no route out of the namespace: the machine's own network is not reachable
    gateway = next(r["gateway"] for r in _ip_json("route", "show", "default"))
    out = _tcp(h, "db1", str(gateway), 80)
    assert out.returncode == 1 and "unreachable" in out.stdout.lower()
    # sshd listens on the namespace address only
    listen = h.ns_exec("db1", ["ss", "-Hltn"]).stdout
    assert f"{h.address('db1')}:22" in listen and "0.0.0.0:22" not in listen


def test_partition_fails_fast_inside_the_machine(ssh_hosts: NetnsHarness) -> None:
    h = ssh_hosts
    h.partition("db1")
    start = time.monotonic()
    out = _tcp(h, "db2", h.address("db1"))
    assert out.returncode == 1
    try:
        socket.create_connection((h.address("db1"), 22), timeout=5).close()
        raise AssertionError("partitioned host answered")
    except OSError as exc:
        assert "No route to host" in str(exc)
    assert time.monotonic() - start < 4
    h.heal("db1")
    assert _tcp(h, "db2", h.address("db1")).stdout.strip() == "ok"


def test_blackhole_and_hang_are_silent(ssh_hosts: NetnsHarness) -> None:
    h = ssh_hosts
    h.blackhole("db1")
    start = time.monotonic()
    try:
        socket.create_connection((h.address("db1"), 22), timeout=1).close()
        raise AssertionError("blackholed host answered")
    except TimeoutError:
        assert 0.9 < time.monotonic() - start < 2
    h.unblackhole("db1")
    h.hang("db1")
    with socket.create_connection((h.address("db1"), 22), timeout=1) as sock:  # kernel accepts
        sock.settimeout(1)
        try:
            sock.recv(10)
            raise AssertionError("hung sshd sent a banner")
        except TimeoutError:
            pass
    h.unhang("db1")
    with socket.create_connection((h.address("db1"), 22), timeout=2) as sock:
        sock.settimeout(2)
        assert sock.recv(4) == b"SSH-"
