"""A drill's per-task journal says what each task changed on each host (issue 15): the
``task`` events of a real run (drills/local-smoke.yml through ansible-runner, no database)
carry Ansible's ``changed`` result, checked against the flag file the tasks act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drdrill.engine.runner import RunOptions, run_drill

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def _task_results(run_dir: Path) -> dict[tuple[str, str, str], bool | None]:
    """{(step, task, host): changed} of the journal's task result events."""
    found: dict[tuple[str, str, str], bool | None] = {}
    for line in (run_dir / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        data = event["data"]
        if event["type"] == "task" and str(data.get("event", "")).startswith("runner_on_"):
            found[(data["step"], data["task"], str(data["host"]))] = data.get("changed")
    return found


def test_task_events_say_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRDRILL_LOCK_DIR", str(tmp_path / "locks"))
    result = run_drill(RunOptions(ROOT / "drills" / "local-smoke.yml",
                                  ROOT / "inventory.example.yml", yes=True,
                                  runs_dir=tmp_path / "runs"))
    assert result.exit_code == 0, result.record
    tasks = _task_results(result.run_dir)
    down, up = "take the service down", "bring the service up on the standby"
    flag, pause = "Service flag", "Wait before acting, if asked (simulates recovery work)"
    # the flag existed (the canary's setup touched it) and was removed; later created again
    assert tasks[(down, flag, "pg1")] is True
    assert tasks[(up, flag, "pg2")] is True
    # waiting changes nothing; a skipped task neither
    assert tasks[(up, pause, "pg2")] is False
    assert tasks[(down, pause, "pg1")] is False
    assert (result.run_dir / "state" / "service-up").exists()
