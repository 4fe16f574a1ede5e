"""Preflight over real SSH hosts: all green, wrong key, dead sshd, clock, disk, drift."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from drdrill.engine.preflight import (
    PreflightReport,
    PreflightSpec,
    parse_preflight,
    run_preflight,
)
from drdrill.executors.inventory import load_inventory
from drdrill.executors.ssh import SshPool
from drdrill.runbook.model import Objectives, ProbeSpec, Runbook, Step, StepKind
from harness.netns import NetnsHarness

DRIFT = {"drift": [{"name": "pg settings", "command": "cat {{ conf_dir }}/pg.conf",
                    "between": ["primary", "standby"], "on_diff": "fail"},
                   {"name": "tuning", "argv": ["cat", "{{ conf_dir }}/tuning.conf"],
                    "between": ["primary", "standby"], "on_diff": "warn"}],
         "max_clock_offset": "500ms", "min_free_disk": "1MB",
         "disk_paths": ["{{ conf_dir }}"], "timeout": "2s"}


def _runbook(**kwargs: Any) -> Runbook:
    step = Step(name="look", kind=StepKind.PROBE, index=1,
                probe=ProbeSpec("ssh", {"host": "db2", "command": "true"}))
    return Runbook(name="ssh-preflight", path=Path("rb.yml"), sha256="0" * 64,
                   objectives=Objectives(30, 0), steps=(step,),
                   roles={"primary": "primary", "standby": "standby"}, **kwargs)


def _write_conf(h: NetnsHarness, pg: Mapping[str, str], tuning: Mapping[str, str]) -> None:
    inv = load_inventory(h.inventory_path)
    for host in ("db1", "db2"):
        conf = Path(inv.vars_of(host)["conf_dir"])
        (conf / "pg.conf").write_text(pg[host])
        (conf / "tuning.conf").write_text(tuning[host])


def _preflight(h: NetnsHarness, spec: PreflightSpec,
               pool: SshPool | None = None) -> tuple[PreflightReport, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    inventory = load_inventory(h.inventory_path)
    with SshPool() as own:
        report = run_preflight(_runbook(), inventory, pool or own,
                               lambda t, d: events.append({"type": t, **d}), spec=spec)
    return report, events


def _by(report: PreflightReport) -> dict[tuple[str, str], Any]:
    return {(r.host, r.check): r for r in report.results}


def test_all_checks_pass_and_are_emitted(ssh_hosts: NetnsHarness) -> None:
    same = {"db1": "wal_level=replica\n", "db2": "wal_level=replica\n"}
    _write_conf(ssh_hosts, same, same)
    with SshPool() as pool:
        report, events = _preflight(ssh_hosts, parse_preflight(DRIFT), pool)
        assert pool.is_warm(next(iter(pool._clients)))  # left warm for the run
    assert report.ok, [r for r in report.results if not r.ok]
    checks = _by(report)
    for host in ("db1", "db2"):
        for check in ("reachable", "host_key", "authenticates", "clock"):
            assert checks[(host, check)].ok
        assert any(c.startswith("disk ") and h == host for h, c in checks)
    assert checks[("db2", "drift pg settings")].detail == "same as db1"
    assert abs(report.clock_offsets["db1"]) < 0.5 and abs(report.clock_offsets["db2"]) < 0.5
    assert len(events) == len(report.results)
    assert {tuple(sorted(e)) for e in events} >= {
        ("check", "detail", "duration_s", "host", "ok", "type")}


def test_drift_is_reported(ssh_hosts: NetnsHarness) -> None:
    _write_conf(ssh_hosts,
                {"db1": "max_connections=100\nwal_level=replica\n",
                 "db2": "max_connections=100\nwal_level=minimal\n"},
                {"db1": "work_mem=4MB\n", "db2": "work_mem=64MB\n"})
    report, _ = _preflight(ssh_hosts, parse_preflight(DRIFT))
    checks = _by(report)
    fail = checks[("db2", "drift pg settings")]
    assert not fail.ok and "line 2" in fail.detail and "wal_level=minimal" in fail.detail
    warn = checks[("db2", "drift tuning")]
    assert warn.ok and warn.warning and "work_mem=64MB" in warn.detail
    assert not report.ok and report.failures == (fail,)


def test_wrong_host_key_fails_preflight_naming_fingerprint(ssh_hosts: NetnsHarness) -> None:
    h = ssh_hosts
    h.known_hosts.write_text(f"{h.address('db1')} {h.host('db2').host_public_key}\n"
                             f"{h.address('db2')} {h.host('db2').host_public_key}\n")
    report, _ = _preflight(h, PreflightSpec(timeout_s=2))
    bad = _by(report)[("db1", "host_key")]
    assert not bad.ok and "db1" in bad.detail and h.host("db1").fingerprint in bad.detail
    assert _by(report)[("db2", "authenticates")].ok
    assert ("db1", "clock") not in _by(report)  # nothing more runs on an unverified host


@pytest.mark.parametrize("fault", ["stop_sshd", "hang"])
def test_dead_sshd_is_reported_within_its_timeout(ssh_hosts: NetnsHarness, fault: str) -> None:
    getattr(ssh_hosts, fault)("db2")
    start = time.monotonic()
    report, _ = _preflight(ssh_hosts, PreflightSpec(timeout_s=2))
    assert time.monotonic() - start <= 2 + 1
    dead = _by(report)[("db2", "reachable")]
    assert not dead.ok and dead.detail.startswith("db2: ")
    assert _by(report)[("db1", "clock")].ok


def test_local_hosts_are_checked_locally(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yml"
    inv.write_text("all:\n  hosts:\n"
                   f"    l1: {{ansible_connection: local, conf_dir: {tmp_path}}}\n"
                   f"    l2: {{ansible_connection: local, conf_dir: {tmp_path}}}\n"
                   "  children:\n    primary: {hosts: {l1: null}}\n"
                   "    standby: {hosts: {l2: null}}\n")
    (tmp_path / "pg.conf").write_text("x\n")
    (tmp_path / "tuning.conf").write_text("y\n")
    rb = Runbook(name="local", path=Path("rb.yml"), sha256="0" * 64,
                 objectives=Objectives(30, 0), steps=(),
                 roles={"primary": "primary", "standby": "standby"})
    with SshPool() as pool:
        report = run_preflight(rb, load_inventory(inv), pool, lambda t, d: None,
                               spec=parse_preflight(DRIFT))
    assert report.ok, report.failures
    assert report.clock_offsets == {"l1": 0.0, "l2": 0.0}
    assert _by(report)[("l2", "drift pg settings")].detail == "same as l1"
