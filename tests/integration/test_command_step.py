"""``command:`` steps with real processes on local hosts (``ansible_connection: local``) and
on the controller (``local: true``): no shell, the whole tree killed on timeout and on
cancel, output and secrets in the journal, facts, on_failure, checkpoints."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drdrill.engine.redact import MASK
from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.executors.command import CommandRequest, run_command_step
from drdrill.executors.inventory import load_inventory
from drdrill.executors.proctree import processes_mentioning
from drdrill.runbook.model import Step, StepKind

pytestmark = pytest.mark.integration


def _inventory(tmp_path: Path, value: str = "plain") -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "tricky": value, "prefix": ["env", "A=1"]},
        "children": {"web": {"hosts": {"w1": {"who": "one"}, "w2": {"who": "two"}}}}}}))
    return path


def _runbook(tmp_path: Path, steps: list[dict[str, Any]], **extra: Any) -> Path:
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    (tmp_path / "drills").mkdir(exist_ok=True)
    path = tmp_path / "drills" / "cmd.yml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "cmd", "objectives": {
        "rto": "60s", "rpo": "1s"}, "roles": {"web": "web"}, "steps": steps, **extra}))
    return path


def _run(tmp_path: Path, steps: list[dict[str, Any]], value: str = "plain",
         **extra: Any) -> tuple[RunResult, list[dict[str, Any]]]:
    result = run_drill(RunOptions(_runbook(tmp_path, steps, **extra),
                                  _inventory(tmp_path, value), yes=True,
                                  runs_dir=tmp_path / "runs"))
    journal = [json.loads(line) for line in
               (result.run_dir / "journal.jsonl").read_text().splitlines()]
    return result, journal


def _commands(journal: list[dict[str, Any]], step: str) -> dict[str, dict[str, Any]]:
    return {e["data"]["host"]: e["data"] for e in journal
            if e["type"] == "command" and e["data"]["step"] == step}


def test_argv_is_never_read_by_a_shell(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    hostile = f"$(touch {pwned}); touch {pwned}"
    result, journal = _run(tmp_path, [
        {"name": "echo", "role": "web", "fact": "said",
         "command": ["echo", "{{ who }}", f"; touch {pwned}", "{{ tricky }}"]},
        {"name": "spliced", "local": True, "command": ["{{ prefix }}", "printenv", "A"]},
    ], value=hostile)
    assert result.exit_code == 0, result.record["steps"]
    assert not pwned.exists()
    ran = _commands(journal, "echo")
    assert set(ran) == {"w1", "w2"}  # each host of the role, with its own host vars
    assert ran["w1"]["stdout"] == f"one ; touch {pwned} {hostile}\n"
    assert ran["w2"]["argv"] == ["echo", "two", f"; touch {pwned}", hostile]
    facts = {e["data"]["host"]: e["data"]["value"] for e in journal if e["type"] == "fact"}
    assert facts == {"w1": f"one ; touch {pwned} {hostile}",
                     "w2": f"two ; touch {pwned} {hostile}"}
    # a whole-element list variable is spliced in as separate arguments
    spliced = _commands(journal, "spliced")["localhost"]
    assert spliced["argv"] == ["env", "A=1", "printenv", "A"] and spliced["stdout"] == "1\n"


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    marker = str(3000 + os.getpid() % 900)
    # a child, a grandchild, and a double-forked one reparented away from the tree
    script = (f"sleep {marker}1 & (sleep {marker}2 &); sh -c 'sleep {marker}3' & "
              f"sleep {marker}4")
    started = time.monotonic()
    result, journal = _run(tmp_path, [
        {"name": "hang", "role": "web", "timeout": "1s", "on_failure": "continue",
         "command": ["sh", "-c", script]},
        {"name": "after", "local": True, "command": ["true"], "checkpoint": "after_done"},
    ])
    elapsed = time.monotonic() - started
    left = [p for n in "1234" for p in processes_mentioning(f"sleep {marker}{n}")]
    assert left == [], left
    hang = next(s for s in result.record["steps"] if s["name"] == "hang")
    assert hang["status"] == "timeout" and "timed out after 1s" in hang["error"]
    assert 0.9 <= hang["duration_s"] < 5, hang
    killed = _commands(journal, "hang")
    assert all(d["status"] == "timeout" and len(d["killed"]) >= 5 for d in killed.values())
    # on_failure: continue ran the next step, whose checkpoint was stamped
    assert [s["status"] for s in result.record["steps"]] == ["timeout", "ok"]
    assert "after_done" in result.record["checkpoints"]
    assert elapsed < 30


def test_failure_reports_stderr_and_aborts(tmp_path: Path) -> None:
    after = tmp_path / "after-ran"
    result, journal = _run(tmp_path, [
        {"name": "fail", "role": "web",
         "command": ["sh", "-c", "echo partial; echo 'disk on fire' >&2; exit 3"]},
        {"name": "never", "local": True, "command": ["touch", str(after)]},
    ])
    assert result.exit_code == 3 and result.status == "aborted"
    step = result.record["steps"][0]
    assert step["status"] == "failed"
    assert step["error"].endswith("sh exited 3: disk on fire"), step["error"]
    ran = _commands(journal, "fail")
    assert {d["rc"] for d in ran.values()} == {3}
    assert ran["w1"]["stdout"] == "partial\n" and ran["w1"]["stderr"] == "disk on fire\n"
    assert not after.exists()


def test_secrets_are_masked_in_journal_and_artifacts(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-Tok3n-value"
    monkeypatch.setenv("DRDRILL_SECRET_API_TOKEN", secret)
    result, journal = _run(tmp_path, [
        {"name": "use it", "local": True, "fact": "echoed",
         "command": ["sh", "-c", 'echo "token=$1"; echo "err $1" >&2; env', "sh",
                     "{{ api_token }}"]},
    ], secrets=["api_token"])
    assert result.exit_code == 0, result.record["steps"]
    ran = _commands(journal, "use it")["localhost"]
    assert ran["argv"][-1] == MASK
    assert ran["stdout"].startswith(f"token={MASK}\n") and ran["stderr"] == f"err {MASK}\n"
    # the child never saw the DRDRILL_SECRET_* environment, only its argument
    assert "DRDRILL_SECRET_API_TOKEN" not in ran["stdout"]
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def _request(tmp_path: Path, argv: list[str], cancel: threading.Event,
             timeout_s: float | None = None) -> CommandRequest:
    inventory = load_inventory(_inventory(tmp_path))
    step = Step(name="direct", kind=StepKind.COMMAND, index=1, role="web",
                command=tuple(argv))
    events: list[tuple[str, dict[str, Any]]] = []
    return CommandRequest(step=step, hosts=("w1", "w2"), inventory=inventory, variables={},
                          secret_vars={}, step_dir=tmp_path / "direct", timeout_s=timeout_s,
                          cancel=cancel,
                          emit=lambda t, d, at_wall=None: events.append((t, dict(d))))


def test_cancel_ends_every_hosts_tree(tmp_path: Path) -> None:
    marker = str(4000 + os.getpid() % 900)
    cancel = threading.Event()
    request = _request(tmp_path, ["sh", "-c", f"sleep {marker}1 & sleep {marker}2"], cancel)
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    outcome = run_command_step(request)
    assert outcome.status == "aborted" and outcome.error == "cancelled"
    assert time.monotonic() - started < 3
    assert processes_mentioning(f"sleep {marker}") == []


def test_resume_ends_a_dead_runs_command_processes(tmp_path: Path) -> None:
    """A SIGKILLed drdrill leaves its command's process writing into the attempt directory:
    resume's orphan sweep (engine/resume.end_orphans) finds it by that file and ends it."""
    import subprocess

    from drdrill.engine.resume import end_orphans

    attempt = tmp_path / "run" / "steps" / "1-x" / "attempt-1"
    attempt.mkdir(parents=True)
    marker = str(7000 + os.getpid() % 900)
    with (attempt / "w1.stdout").open("wb") as out:
        proc = subprocess.Popen(["sh", "-c", f"sleep {marker}1 & sleep {marker}2"],
                                stdout=out, stderr=out, start_new_session=True)
    time.sleep(0.2)
    ended = end_orphans(tmp_path / "run")
    assert proc.pid in ended
    proc.wait(5)
    assert processes_mentioning(f"sleep {marker}") == []
