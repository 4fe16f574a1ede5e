"""Pre-staged playbook steps (engine/prestage.py, executors/prestage.py) with real
ansible-runner on local hosts: the step starts at the release, not at the process start;
the RTO path is prepared before T0; timeouts count from the release; a prepared step that
is never released leaves no process behind (checked in /proc)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.events import Event
from drdrill.executors.proctree import processes_mentioning
from drdrill.journal.store import read_events

pytestmark = pytest.mark.integration
DRILLS = Path(__file__).resolve().parent.parent / "fixtures" / "drills"


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRDRILL_LOCK_DIR", str(tmp_path / "locks"))


def _run(name: str, inventory: Path, runs: Path, prestage: bool = True,
         cancel: threading.Event | None = None) -> RunResult:
    return run_drill(RunOptions(DRILLS / f"{name}.yml", inventory, yes=True, runs_dir=runs,
                                prestage=prestage), cancel=cancel)


def _events(result: RunResult) -> list[Event]:
    return read_events(result.run_dir / "journal.jsonl")


def _one(events: list[Event], type_: str, name: str) -> Event:
    found = [e for e in events if e.type == type_ and e.data.get("name") == name]
    assert len(found) == 1, (type_, name, [e.type for e in events])
    return found[0]


def _wall(event: Event) -> float:
    return datetime.fromisoformat(event.wall.replace("Z", "+00:00")).timestamp()


def _stamp(result: RunResult, name: str) -> float:
    return float((result.run_dir / name).read_text())


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return state[state.rfind(")") + 2] == "Z"


def test_step_starts_at_the_release_and_the_rto_path_is_prepared_before_t0(
        local_inventory: Path, tmp_path: Path) -> None:
    result = _run("prestage", local_inventory, tmp_path / "runs")
    assert result.status == "passed", result.record.get("reason")
    events = _events(result)
    t0 = next(e for e in events if e.type == "t0")
    disaster_started = _one(events, "step_started", "disaster")
    for name in ("disaster", "recover"):
        prepared = _one(events, "step_prepared", name)
        released = _one(events, "step_released", name)
        started = _one(events, "step_started", name)
        process_start = prepared.mono - prepared.data["ready_s"]
        # the journaled start is the release instant, not the process start
        assert released.mono == started.mono
        assert process_start < prepared.mono <= started.mono
        # the first task ran after the release (the playbook's own wall clock)
        assert _stamp(result, f"{name}.stamp") >= _wall(started) - 0.005
        assert prepared.data["pid"] > 0 and _gone(prepared.data["pid"])
    # disaster: prepared at the latest while the step before it ran
    before_finished = _one(events, "step_finished", "before")
    disaster_prepared = _one(events, "step_prepared", "disaster")
    assert disaster_prepared.mono - disaster_prepared.data["ready_s"] < before_finished.mono
    # recover (between the disaster and service_restored): ready before the disaster step
    # was released, so before T0 — both as journaled and as derived in the record
    recover_prepared = _one(events, "step_prepared", "recover")
    assert recover_prepared.mono < disaster_started.mono < t0.mono
    assert recover_prepared.mono < result.record["results"]["t0_mono"]
    assert _stamp(result, "recover.stamp") > _stamp(result, "disaster.stamp")
    # nothing new is started on the RTO path: "after" is started when due
    assert not [e for e in events if e.type == "step_prepared" and e.data["name"] == "after"]
    assert _one(events, "step_finished", "after").data["status"] == "ok"
    run_started = next(e for e in events if e.type == "run_started")
    assert run_started.data["prestage"] is True


def test_no_prestage_starts_each_step_when_due(local_inventory: Path, tmp_path: Path) -> None:
    result = _run("prestage", local_inventory, tmp_path / "runs", prestage=False)
    assert result.status == "passed", result.record.get("reason")
    events = _events(result)
    assert not [e for e in events if e.type in ("step_prepared", "step_released")]
    started = _one(events, "step_started", "recover")
    assert _stamp(result, "recover.stamp") >= _wall(started) - 0.005
    assert next(e for e in events if e.type == "run_started").data["prestage"] is False


def test_timeout_counts_from_the_release(local_inventory: Path, tmp_path: Path) -> None:
    result = _run("prestage-timeout", local_inventory, tmp_path / "runs")
    events = _events(result)
    prepared = _one(events, "step_prepared", "hangs")
    started = _one(events, "step_started", "hangs")
    finished = _one(events, "step_finished", "hangs")
    assert finished.data["status"] == "timeout"
    # held longer than its 3 s timeout before its turn, yet it ran 3 s from the release
    assert started.mono - (prepared.mono - prepared.data["ready_s"]) > 3.0
    assert finished.mono - started.mono >= 3.0
    assert not processes_mentioning("617.31")
    assert _gone(prepared.data["pid"])


def test_prepared_step_of_an_aborted_run_leaves_no_process(local_inventory: Path,
                                                           tmp_path: Path) -> None:
    result = _run("prestage-abort", local_inventory, tmp_path / "runs")
    assert result.status == "aborted"
    events = _events(result)
    discarded = _one(events, "step_discarded", "prepared never released")
    # normally held by then (10 s); on a badly overloaded machine it may still be starting,
    # and the discard must end it just the same
    for prepared in [e for e in events if e.type == "step_prepared"]:
        assert prepared.data["name"] == "prepared never released"
        assert discarded.mono > prepared.mono
        assert _gone(prepared.data["pid"])
    assert not [e for e in events if e.type == "step_started"
                and e.data["name"] == "prepared never released"]
    assert not processes_mentioning("619.47")
    assert not (result.run_dir / "steps" / "2-prepared-never-released").exists()
    names = [s["name"] for s in result.record["steps"]]
    assert "prepared never released" not in names


def test_prepared_step_interrupted_by_ctrl_c_leaves_no_process(local_inventory: Path,
                                                               tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cancel = threading.Event()
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.setdefault(
        "result", _run("prestage-abort", local_inventory, runs, cancel=cancel)))
    runner.start()
    pid = _wait_for_prepared(runs, timeout_s=60.0)
    assert not _gone(pid), "the prepared process is held, alive, before the interrupt"
    cancel.set()
    runner.join(60.0)
    result = box["result"]
    assert result.status == "aborted"
    assert _gone(pid)
    assert not processes_mentioning("619.47")
    events = _events(result)
    assert _one(events, "step_discarded", "prepared never released")
    assert any(e.type == "run_finished" for e in events)


def test_parallel_members_are_prepared_and_released(local_inventory: Path,
                                                    tmp_path: Path) -> None:
    result = _run("prestage-parallel", local_inventory, tmp_path / "runs")
    assert result.status == "passed", result.record.get("reason")
    events = _events(result)
    for name in ("member a", "member b"):
        prepared = _one(events, "step_prepared", name)
        started = _one(events, "step_started", name)
        assert _one(events, "step_released", name).mono == started.mono
        assert prepared.mono - prepared.data["ready_s"] < started.mono
        assert _stamp(result, f"{name[-1]}.stamp") >= _wall(started) - 0.005


def _wait_for_prepared(runs: Path, timeout_s: float) -> int:
    """The pid of the first step_prepared journaled under ``runs`` (polls the journal)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for journal in runs.glob("*/journal.jsonl"):
            for line in journal.read_text().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event["type"] == "step_prepared":
                    return int(event["data"]["pid"])
        time.sleep(0.05)
    raise AssertionError("no step_prepared within the time allowed")



_HOLDER = """
import sys, threading, time
from pathlib import Path
from drdrill.executors.ansible import AnsibleExecutor
from drdrill.executors.base import StepRequest
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.model import Step, StepKind

playbook, inventory, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
step = Step(name="held", kind=StepKind.PLAYBOOK, index=1, playbook=playbook.name)
request = StepRequest(step=step, playbook=playbook, hosts=("pg1",),
                      inventory=load_inventory(inventory), step_dir=work / "attempt-1",
                      extra_vars={"drdrill_hosts": "pg1", "sleep_s": "623.59"},
                      secret_vars={}, timeout_s=60.0, cancel=threading.Event(),
                      emit=lambda *a, **k: None, prestage=True)
prepared = AnsibleExecutor().prepare(request)
assert prepared.wait_ready(120.0)
print(prepared.ready.pid, flush=True)
time.sleep(600)
"""


def test_prepared_process_ends_when_drdrill_is_killed(local_inventory: Path,
                                                      tmp_path: Path) -> None:
    """SIGKILL of the process that prepared a step (no cleanup code runs): the held
    ansible-playbook sees its release socket close and exits on its own."""
    import signal
    import subprocess
    import sys

    playbook = DRILLS.parent / "playbooks" / "sleep-marker.yml"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(playbook),
                               str(local_inventory), str(tmp_path / "work")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        pid = int(holder.stdout.readline())
        assert not _gone(pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10.0
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid), "the held ansible-playbook outlived the process that prepared it"
        assert not processes_mentioning("623.59")
    finally:
        holder.kill()


def test_rollback_step_is_prepared_while_the_previous_one_runs(local_inventory: Path,
                                                               tmp_path: Path) -> None:
    """Rollback steps are pre-staged like forward ones: the second is started while the
    first runs, held, and its journaled start is its release, after the first ended."""
    result = _run("prestage-rollback", local_inventory, tmp_path / "runs")
    events = _events(result)
    assert [e.data["status"] for e in events if e.type == "rollback_finished"] == ["ok"]
    rollback = [e for e in events if e.data.get("phase") == "rollback"]
    prepared = _one(rollback, "step_prepared", "undo two")
    assert prepared.data["phase"] == "rollback"
    assert not [e for e in events if e.type == "step_prepared" and e.data["name"] != "undo two"]
    released = _one(rollback, "step_released", "undo two")
    started = _one(rollback, "step_started", "undo two")
    first_done = _one(rollback, "step_finished", "undo one")
    assert released.mono == started.mono >= first_done.mono
    # its process started while "undo one" still ran (1.5 s of sleep in it)
    assert prepared.mono - prepared.data["ready_s"] < first_done.mono
    assert _stamp(result, "undo-two.stamp") >= _wall(started) - 0.005
    assert _one(rollback, "step_finished", "undo two").data["status"] == "ok"
    assert _gone(prepared.data["pid"])
