"""``command:`` steps over SSH (root; namespace hosts): the argv runs through the run's warm
paramiko connection with host keys checked, quoted so no remote shell reads a value, and a
timeout or a cancel ends the remote process tree (the namespaces share PIDs with this
machine, so /proc here sees the remote processes)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.executors.command import CommandRequest, run_command_step
from drdrill.executors.inventory import load_inventory
from drdrill.executors.proctree import processes_mentioning
from drdrill.executors.ssh import SshPool
from drdrill.runbook.model import Step, StepKind
from harness.drills import ssh_inventory
from harness.netns import NetnsHarness


def _runbook(tmp_path: Path, steps: list[dict[str, Any]]) -> Path:
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    path = tmp_path / "cmd.yml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "ssh-cmd", "objectives": {
        "rto": "60s", "rpo": "1s"}, "roles": {"primary": "primary", "standby": "standby"},
        "steps": steps}))
    return path


def test_command_runs_on_each_host_without_a_shell(ssh_hosts: NetnsHarness,
                                                   tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    marker = str(5000 + os.getpid() % 900)
    inventory = ssh_inventory(ssh_hosts, tmp_path / "inv.yml")
    result = run_drill(RunOptions(_runbook(tmp_path, [
        {"name": "where", "role": "primary:standby", "fact": "ns",
         "command": ["sh", "-c", 'echo "$1 $(hostname -I)"', "sh", f"$(touch {pwned}); x"]},
        {"name": "hang", "role": "standby", "timeout": "2s", "on_failure": "continue",
         "command": ["sh", "-c", f"sleep {marker}1 & (sleep {marker}2 &); sleep {marker}3"]},
    ]), inventory, yes=True, runs_dir=tmp_path / "runs"))
    journal = [json.loads(line) for line in
               (result.run_dir / "journal.jsonl").read_text().splitlines()]
    assert not pwned.exists()
    facts = {e["data"]["host"]: e["data"]["value"] for e in journal if e["type"] == "fact"}
    assert set(facts) == {"db1", "db2"}
    for host, value in facts.items():  # each ran on its own host, the argument verbatim
        assert value.startswith(f"$(touch {pwned}); x ") and ssh_hosts.address(host) in value
    hang = next(s for s in result.record["steps"] if s["name"] == "hang")
    assert hang["status"] == "timeout" and 1.9 <= hang["duration_s"] < 8, hang
    killed = next(e["data"] for e in journal
                  if e["type"] == "command" and e["data"]["step"] == "hang")
    assert len(killed["killed"]) >= 3, killed
    time.sleep(0.3)
    assert processes_mentioning(f"sleep {marker}") == []
    # preflight opened one paramiko connection per host; the steps reused them
    connections = next(e["data"] for e in journal if e["type"] == "connections")
    assert {h: len(v) for h, v in connections["first_connect_s"].items()} == {"db1": 1,
                                                                              "db2": 1}


def test_cancel_ends_the_remote_tree(ssh_hosts: NetnsHarness, tmp_path: Path) -> None:
    marker = str(6000 + os.getpid() % 900)
    inventory = load_inventory(ssh_inventory(ssh_hosts, tmp_path / "inv.yml"))
    cancel = threading.Event()
    step = Step(name="direct", kind=StepKind.COMMAND, index=1, role="standby",
                command=("sh", "-c", f"sleep {marker}1 & sleep {marker}2"))
    with SshPool() as pool:
        request = CommandRequest(step=step, hosts=("db2",), inventory=inventory, variables={},
                                 secret_vars={}, step_dir=tmp_path / "d", timeout_s=None,
                                 cancel=cancel, emit=lambda *a, **k: None, pool=pool)
        threading.Timer(1.0, cancel.set).start()
        started = time.monotonic()
        outcome = run_command_step(request)
        assert outcome.status == "aborted"
        assert time.monotonic() - started < 5
        time.sleep(0.3)
        assert processes_mentioning(f"sleep {marker}") == []
        # the warm connection survives a cancelled command: the next one reuses it
        again = run_command_step(CommandRequest(
            step=Step(name="again", kind=StepKind.COMMAND, index=2, role="standby",
                      command=("true",)),
            hosts=("db2",), inventory=inventory, variables={}, secret_vars={},
            step_dir=tmp_path / "e", timeout_s=10, cancel=threading.Event(),
            emit=lambda *a, **k: None, pool=pool))
        assert again.status == "ok"
        assert len(pool.connect_times["db2"]) == 1
