"""A host that stops answering in the middle of a playbook step over SSH
(tests/fixtures/drills/ssh-hung-host.yml): the step ends at its timeout (+ at most 1 s), the
failure policy applies, and no ssh or ansible process is left behind.

The fault is injected once the step's remote command really runs on db1 (its ``sleep`` is
in /proc), over the connection warmed by the previous step (ControlPersist): the case
FIELD-NOTES warns hangs without keepalives."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.events import Event
from drdrill.executors.proctree import processes_mentioning
from harness.drills import (
    FIXTURE_PLAYBOOKS,
    control_dir,
    render_drill,
    ssh_inventory,
    ssh_leftovers,
)
from harness.netns import NetnsHarness

DRILL = "ssh-hung-host.yml"
LONG_STEP = "a long task on db1"
MARKER = "600.4711"  # the remote sleep's argument (the fixture's sleep_s)
TIMEOUT_S = 5.0


class FaultWhenRunning:
    """Bus handler: once LONG_STEP's task starts, wait until its remote ``sleep`` runs on
    db1, then inject ``fault`` (from a thread: handlers must not block the bus)."""

    def __init__(self, harness: NetnsHarness, fault: Callable[[], None], work: Path) -> None:
        self.harness = harness
        self.work = work
        self.fault = fault
        self.injected_at: float | None = None
        self.running: list[str] = []  # our ssh/ansible processes when the fault hit
        self.thread: threading.Thread | None = None

    def handle(self, event: Event) -> None:
        data = event.data
        if (event.type == "task" and data.get("step") == LONG_STEP
                and data.get("event") == "playbook_on_task_start" and self.thread is None):
            self.thread = threading.Thread(target=self._inject, daemon=True)
            self.thread.start()

    def _inject(self) -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not processes_mentioning("sleep", MARKER):
            time.sleep(0.02)
        self.running = ssh_leftovers(str(self.harness.dir), "drdrill-cp-", str(self.work))
        self.fault()
        self.injected_at = time.monotonic()


@pytest.fixture()
def hosts(netns_factory: Callable[..., NetnsHarness]) -> Iterator[NetnsHarness]:
    harness = netns_factory(["db1", "db2"])
    try:
        yield harness
    finally:
        harness.unhang("db1")
        harness.unblackhole("db1")


def _run(harness: NetnsHarness, tmp_path: Path, fault: Callable[[], None],
         on_failure: str) -> tuple[RunResult, FaultWhenRunning]:
    def policy(runbook: dict[str, Any]) -> dict[str, Any]:
        for step in runbook["steps"]:
            if step["name"] == LONG_STEP:
                step["on_failure"] = on_failure
        return runbook

    runbook = render_drill(DRILL, harness, tmp_path / "work", edit=policy,
                           playbooks=FIXTURE_PLAYBOOKS)
    inventory = ssh_inventory(harness, tmp_path / "inventory.yml")
    injector = FaultWhenRunning(harness, fault, tmp_path)
    result = run_drill(RunOptions(runbook, inventory, yes=True, runs_dir=tmp_path / "runs"),
                       handlers=[injector])
    return result, injector


def _events(result: RunResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (result.run_dir / "journal.jsonl").read_text().splitlines()]


def _check_hung_step(harness: NetnsHarness, result: RunResult,
                     injector: FaultWhenRunning) -> dict[str, Any]:
    assert injector.injected_at is not None, "the fault was never injected"
    steps = {s["name"]: s for s in result.record["steps"]}
    hung = steps[LONG_STEP]
    assert hung["status"] == "timeout", hung
    # ends at its timeout: not before it, and at most 1 s after it
    assert TIMEOUT_S - 0.1 <= hung["duration_s"] <= TIMEOUT_S + 1.0, hung["duration_s"]
    # the remote sleep really ran (the fault hit mid-step), and nothing local survives:
    # no ansible-playbook/worker, no ssh client, no ControlPersist master
    events = _events(result)
    started = [e for e in events if e["type"] == "task" and e["data"]["step"] == LONG_STEP]
    assert started
    # the scan below is not vacuous: it saw the playbook's ssh client and master running
    assert any("[mux]" in p for p in injector.running), injector.running
    assert any("ansible-playbook" in p for p in injector.running), injector.running
    assert any("IdentityFile" in p for p in injector.running), injector.running
    leftovers = ssh_leftovers(str(harness.dir), control_dir(result.run_dir),
                              str(result.run_dir.resolve()))
    assert leftovers == []
    assert processes_mentioning("ansible-playbook", str(result.run_dir.resolve())) == []
    assert not Path(control_dir(result.run_dir)).exists()
    print(f"\n{LONG_STEP}: timeout {TIMEOUT_S:g}s, ended after {hung['duration_s']:.2f}s")
    return steps


def test_hung_host_blackholed_mid_step_aborts_and_rolls_back(hosts: NetnsHarness,
                                                             tmp_path: Path) -> None:
    result, injector = _run(hosts, tmp_path, lambda: hosts.blackhole("db1"), "abort")
    steps = _check_hung_step(hosts, result, injector)
    assert result.record["status"] == "aborted" and result.exit_code == 3
    assert "the next step" not in steps  # abort: nothing after it ran...
    rollback = [e for e in _events(result) if e["type"] == "rollback_finished"]
    assert rollback and rollback[0]["data"]["status"] == "ok"  # ...but the rollback did
    assert (result.run_dir / "rolled-back").exists()
    assert not (result.run_dir / "next-step-ran").exists()


def test_hung_host_frozen_sshd_mid_step_continues(hosts: NetnsHarness, tmp_path: Path) -> None:
    result, injector = _run(hosts, tmp_path, lambda: hosts.hang("db1"), "continue")
    steps = _check_hung_step(hosts, result, injector)
    assert steps["the next step"]["status"] == "ok"  # continue: the next step ran
    assert (result.run_dir / "next-step-ran").exists()
    assert not (result.run_dir / "rolled-back").exists()
    assert result.record["status"] == "failed" and result.exit_code == 1
