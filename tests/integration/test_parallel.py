"""Parallel groups end to end with real ansible-runner playbooks (ansible_connection: local):
members truly overlap with exact per-member clocks, one member's timeout ends only its own
process tree, on_failure applies per member, Ctrl-C stops every member, and a SIGKILL
inside a group resumes each member in flight like a main step."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from crashkit import (
    DRDRILL,
    DRILLS,
    Lines,
    cli,
    complete_lines,
    live_processes,
    run_dir_of,
    signal_when,
    start,
    wait_gone,
)

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.events import CallbackHandler, Event
from drdrill.journal.record import build_record, journal_last_hash
from drdrill.journal.store import read_events
from drdrill.journal.verify import verify_run

pytestmark = pytest.mark.integration


def _marker(whole: int) -> str:
    """A unique sleep argument (``sleep 600.1234561``): finds the process in /proc."""
    return f"{whole}.{secrets.randbelow(10**6):06d}1"


def _rows(record: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["phase"], s["name"]): s for s in record["steps"]}


def _events(run_dir: Path, type_: str, **match: Any) -> list[Event]:
    return [e for e in read_events(run_dir / "journal.jsonl") if e.type == type_
            and all(e.data.get(k) == v for k, v in match.items())]


def _sleeps(marker: str) -> list[tuple[int, str]]:
    return [p for p in live_processes(marker) if p[1].startswith(f"sleep {marker}")]


def _assert_record_derived(run_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((run_dir / "record.json").read_text())
    journal = run_dir / "journal.jsonl"
    derived = build_record(read_events(journal), journal_last_hash(journal))
    assert json.loads(json.dumps(derived, sort_keys=True, default=str)) == record
    assert verify_run(run_dir).intact
    return record


def test_members_overlap_and_a_timeout_ends_only_its_own_tree(
        local_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the timeout (8 s) leaves room for Ansible's start-up on a loaded machine; the other
    # member sleeps past it
    ok_s, hang_s = _marker(14), _marker(600)
    at_timeout: dict[str, list[tuple[int, str]]] = {}

    def watch(event: Event) -> None:  # called as the timed-out member's end is journaled
        if event.type == "step_finished" and event.data.get("name") == "hangs":
            at_timeout["hangs"] = _sleeps(hang_s)
            at_timeout["finishes"] = _sleeps(ok_s)

    monkeypatch.setenv("DRDRILL_LOCK_DIR", str(tmp_path / "locks"))
    result = run_drill(RunOptions(DRILLS / "parallel-timeout.yml", local_inventory, yes=True,
                                  runs_dir=tmp_path / "runs",
                                  extra_vars={"ok_s": ok_s, "hang_s": hang_s}),
                       handlers=[CallbackHandler(watch)])
    record = _assert_record_derived(result.run_dir)
    rows = _rows(record)
    fin, hang, after = rows["main", "finishes"], rows["main", "hangs"], rows["main", "after"]
    assert (fin["status"], hang["status"], after["status"]) == ("ok", "timeout", "ok")
    assert hang["error"] == "timed out after 8s"
    assert fin["group"] == hang["group"] == "pair" and after["group"] is None
    # truly at once: each member started before the other ended (journal instants)
    assert fin["start_s"] < hang["end_s"] and hang["start_s"] < fin["end_s"]
    # one release: pre-staged during "settle", both held ready, then started together
    assert abs(fin["start_s"] - hang["start_s"]) < 0.1
    # exact per-member clocks: the timeout counts 8 s from its own start, the other ran on
    assert 8.0 <= hang["duration_s"] < 11.0, hang
    assert fin["duration_s"] >= 14.0 and fin["end_s"] > hang["end_s"]
    # both sleeps had started before the timeout: the kill ended a running tree
    for name in ("finishes", "hangs"):
        sleep_started = [e.mono for e in _events(result.run_dir, "task", step=name)
                         if e.data.get("event") == "playbook_on_task_start"
                         and str(e.data.get("task")).startswith("Sleep")]
        assert sleep_started and sleep_started[0] < hang["end_s"], (name, sleep_started)
    assert after["start_s"] >= fin["end_s"]  # the next step waits for the whole group
    # at the instant the timed-out member ended: its sleep was gone, its sibling's alive
    assert at_timeout["hangs"] == [], at_timeout
    assert len(at_timeout["finishes"]) == 1, at_timeout
    # the member's checkpoint is stamped as it ends, not when the group ends
    assert fin["end_s"] <= record["checkpoint_offsets_s"]["finished_member"] < fin["end_s"] + 0.5
    # on_failure continue: the run went on and completed, failed (not aborted)
    assert result.status == "failed" and result.exit_code == 1
    _assert_reports_overlap(result.run_dir, "pair", ("finishes", "hangs"))
    starts = _events(result.run_dir, "step_started", group="pair")
    assert sorted(e.data["name"] for e in starts) == ["finishes", "hangs"]
    assert not wait_gone(ok_s, timeout_s=3) and not wait_gone(hang_s, timeout_s=3)


def _assert_reports_overlap(run_dir: Path, group: str, names: tuple[str, str]) -> None:
    """report.md names the group on each member; the timeline draws the members' bars on
    rows of their own, overlapping in x."""
    md = (run_dir / "report.md").read_text()
    for name in names:
        assert re.search(rf"\d+\. {re.escape(name)} \[parallel: {group}\]", md), name
    html = (run_dir / "report.html").read_text()
    bars = [(float(m["x"]), float(m["w"])) for m in re.finditer(
        rf'data-group="{group}" data-start-s="[^"]*" data-duration-s="[^"]*" '
        r'x="(?P<x>[\d.]+)" y="[\d.]+" width="(?P<w>[\d.]+)"', html)]
    assert len(bars) == 2, bars
    (xa, wa), (xb, wb) = bars
    assert xa < xb + wb and xb < xa + wa, bars


def test_abort_member_cancels_its_sibling_then_the_rollback_group_runs(
        local_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hang_s = _marker(600)
    monkeypatch.setenv("DRDRILL_LOCK_DIR", str(tmp_path / "locks"))
    result = run_drill(RunOptions(DRILLS / "parallel-abort.yml", local_inventory, yes=True,
                                  runs_dir=tmp_path / "runs", extra_vars={"hang_s": hang_s}))
    record = _assert_record_derived(result.run_dir)
    rows = _rows(record)
    breaks, hangs = rows["main", "breaks"], rows["main", "hangs"]
    assert (breaks["status"], hangs["status"]) == ("failed", "aborted")
    assert "this step fails on purpose" in breaks["error"]
    assert hangs["error"] == "cancelled"
    # the sibling was cancelled when the failure came, not at its 120 s timeout
    assert breaks["end_s"] <= hangs["end_s"] < breaks["end_s"] + 5.0
    assert ("main", "never runs") not in rows
    assert result.status == "aborted" and result.exit_code == 3
    assert record["reason"] == "step 'breaks' failed; on_failure: abort"
    undo_flag, undo_pause = rows["rollback", "undo flag"], rows["rollback", "undo pause"]
    assert undo_flag["status"] == undo_pause["status"] == "ok"
    assert undo_flag["group"] == undo_pause["group"] == "undo"
    assert undo_flag["start_s"] < undo_pause["end_s"] and undo_pause["start_s"] < undo_flag["end_s"]
    assert (result.run_dir / "rolled-back").exists()
    assert not wait_gone(hang_s, timeout_s=3)


def test_incident_mode_lets_the_siblings_finish_then_hands_over(
        local_inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real outage a half-done recovery action is worse than a finished one: a failed
    member does not cut its siblings off; once they end, the run is handed over."""
    done_s = _marker(3)
    monkeypatch.setenv("DRDRILL_LOCK_DIR", str(tmp_path / "locks"))
    result = run_drill(RunOptions(DRILLS / "parallel-abort.yml", local_inventory, yes=True,
                                  mode="incident", runs_dir=tmp_path / "runs",
                                  extra_vars={"hang_s": done_s}))
    record = _assert_record_derived(result.run_dir)
    rows = _rows(record)
    breaks, sibling = rows["main", "breaks"], rows["main", "hangs"]
    assert (breaks["status"], sibling["status"]) == ("failed", "ok")
    assert sibling["duration_s"] >= 3.0 and sibling["end_s"] > breaks["end_s"]
    (handoff,) = _events(result.run_dir, "incident_handoff")
    assert handoff.data["failed_step"] == "breaks"
    assert handoff.mono >= sibling["end_s"]  # handed over once the group had ended
    assert ("main", "never runs") not in rows
    assert result.exit_code == 3
    assert "incident mode: handed over" in str(record["reason"])


def test_ctrl_c_inside_a_group_stops_every_member(local_inventory: Path,
                                                 tmp_path: Path) -> None:
    hang_a, hang_b = _marker(600), _marker(600)
    proc = subprocess.Popen(
        [DRDRILL, "run", str(DRILLS / "parallel-hang.yml"), "-i", str(local_inventory),
         "--yes", "--runs-dir", str(tmp_path / "runs"), "-e", f"hang_a={hang_a}",
         "-e", f"hang_b={hang_b}"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "DRDRILL_LOCK_DIR": str(tmp_path / "locks")})
    try:
        both = threading.Event()
        for _ in range(1200):  # both members' processes are running
            if _sleeps(hang_a) and _sleeps(hang_b):
                both.set()
                break
            assert proc.poll() is None, proc.communicate()
            both.wait(0.05)
        assert both.is_set(), "the two members never ran at once"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, (out[-2000:], err[-2000:])
    run_dir = run_dir_of(tmp_path / "runs")
    assert run_dir is not None
    record = _assert_record_derived(run_dir)
    rows = _rows(record)
    assert rows["main", "hang a"]["status"] == rows["main", "hang b"]["status"] == "aborted"
    assert record["reason"] == "interrupted by the operator"
    assert ("main", "never runs") not in rows
    assert rows["rollback", "undo"]["status"] == "ok"
    assert not wait_gone(hang_a, timeout_s=3) and not wait_gone(hang_b, timeout_s=3)
    assert not wait_gone(f"{run_dir.resolve()}/", timeout_s=3)


def _both_holding(lines: Lines) -> bool:
    """Both members' ``Hold`` task has started: each has done its side effect."""
    holding = {ln["data"].get("step") for ln in lines if ln["type"] == "task"
               and ln["data"].get("event") == "playbook_on_task_start"
               and str(ln["data"].get("task", "")).startswith("Hold")}
    return holding >= {"quick", "slow"}


def _quick_done_slow_holding(lines: Lines) -> bool:
    finished = {ln["data"].get("name") for ln in lines if ln["type"] == "step_finished"}
    return "quick" in finished and _both_holding(lines)


def _counts(run_dir: Path) -> dict[str, int]:
    return {name: len((run_dir / f"count-{name}.log").read_text().splitlines())
            if (run_dir / f"count-{name}.log").exists() else 0 for name in ("quick", "slow")}


def _kill_inside_group(tmp_path: Path, inventory: Path, trigger: Any,
                       *extra: str) -> tuple[Path, Lines, dict[str, str]]:
    runs = tmp_path / "runs"
    env = {"DRDRILL_LOCK_DIR": str(tmp_path / "locks")}
    proc = start("run", str(DRILLS / "parallel-crash.yml"), "-i", str(inventory), "--yes",
                 "--runs-dir", str(runs), *extra, cwd=tmp_path, env=env)
    run_dir, _ = signal_when(proc, runs, trigger)
    proc.communicate(timeout=30)
    _, kept = complete_lines(run_dir / "journal.jsonl")
    return run_dir, kept, env


def _finished_once(run_dir: Path) -> list[str]:
    names = [e.data["name"] for e in _events(run_dir, "step_finished", phase="main")]
    assert sorted(names) == sorted(set(names)), names
    return names


def test_sigkill_with_two_members_in_flight_asks_about_both(local_inventory: Path,
                                                            tmp_path: Path) -> None:
    run_dir, kept, env = _kill_inside_group(tmp_path, local_inventory, _both_holding,
                                            "-e", "quick_hold=4")
    assert not any(ln["type"] == "step_finished" and ln["data"]["name"] in ("quick", "slow")
                   for ln in kept)
    before = (run_dir / "journal.jsonl").read_bytes()
    asked = cli("resume", str(run_dir), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                env=env)
    assert asked.returncode == 2, asked.stderr
    assert "steps 'quick', 'slow' of one parallel group were running" in asked.stderr
    assert (run_dir / "journal.jsonl").read_bytes() == before  # nothing executed

    done = cli("resume", str(run_dir), "--assume", "done", "--runs-dir",
               str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    record = _assert_record_derived(run_dir)
    (resumed,) = _events(run_dir, "resumed")
    assert resumed.data["in_flight_steps"] == ["quick", "slow"]
    assert resumed.data["decisions"] == {"quick": "done", "slow": "done"}
    assert sorted(_finished_once(run_dir)) == ["after", "quick", "slow", "warm up"]
    assert _counts(run_dir) == {"quick": 1, "slow": 1}  # neither ran twice
    rows = _rows(record)
    assert rows["main", "quick"]["group"] == rows["main", "slow"]["group"] == "pair"
    assert set(record["checkpoints"]) >= {"quick_done", "slow_done"}
    assert not live_processes(f"{run_dir.resolve()}/")


def test_sigkill_after_one_member_finished_redoes_only_the_other(local_inventory: Path,
                                                                  tmp_path: Path) -> None:
    run_dir, kept, env = _kill_inside_group(tmp_path, local_inventory,
                                            _quick_done_slow_holding)
    quick_mark = next((ln["mono"] for ln in kept
                       if ln["type"] == "checkpoint" and ln["data"]["name"] == "quick_done"),
                      None)
    done = cli("resume", str(run_dir), "--assume", "redo", "--runs-dir",
               str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    record = _assert_record_derived(run_dir)
    (resumed,) = _events(run_dir, "resumed")
    assert resumed.data["in_flight_steps"] == ["slow"]
    assert resumed.data["decisions"] == {"slow": "redo"}
    # the finished member is not run again and keeps its instant; the other ran again
    counts = _counts(run_dir)
    assert counts["quick"] == 1 and counts["slow"] == 2, counts
    quick_starts = _events(run_dir, "step_started", name="quick")
    assert len(quick_starts) == 1
    if quick_mark is None:  # lost with the kill: stamped again at the member's end
        quick_mark = next(ln["mono"] for ln in kept if ln["type"] == "step_finished"
                          and ln["data"]["name"] == "quick")
    assert record["checkpoint_offsets_s"]["quick_done"] == quick_mark
    assert _rows(record)["main", "slow"]["status"] == "ok"
    slow_starts = _events(run_dir, "step_started", name="slow")
    assert len(slow_starts) == 2 and slow_starts[1].mono >= resumed.mono
    assert (run_dir / "steps" / "3-slow" / "crashed-1-attempt-1").is_dir()
    assert sorted(_finished_once(run_dir)) == ["after", "quick", "slow", "warm up"]
    assert not live_processes(f"{run_dir.resolve()}/")
