"""Parallel groups in the model: members flattened in place (indexes, lines, group names),
``batches`` cutting a list back into what runs at once, and ``plan`` costing a group as its
longest member. Validation errors are in tests/schema/invalid/parallel-groups.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.engine.plan import build_plan
from drdrill.errors import ValidationFailed
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.model import batches

RUNBOOK = """\
name: grouped
objectives: {rto: 60s, rpo: 0s}
roles: {primary: primary, standby: standby}
steps:
  - name: crash
    playbook: p.yml
    role: primary
    disaster: true
    timeout: 5s
  - name: fence and promote
    parallel:
      - name: fence
        playbook: p.yml
        role: primary
        timeout: 10s
        on_failure: continue
      - name: promote
        playbook: p.yml
        role: standby
        timeout: 20s
        retries: 1
        retry_delay: 2s
  - name: settle
    pause: 3s
  - parallel:
      - {name: back, pause: 1s, checkpoint: service_restored}
      - {name: tell, notify: {message: "back at {now}"}}
  - {name: after, playbook: p.yml, role: standby, timeout: 100s}
rollback:
  steps:
    - parallel:
        - {name: undo a, pause: 1s}
        - {name: undo b, playbook: p.yml, role: primary}
"""


def _load(tmp_path: Path, text: str = RUNBOOK) -> Path:
    (tmp_path / "drills").mkdir(exist_ok=True)
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    (tmp_path / "playbooks" / "p.yml").write_text("- hosts: all\n  tasks: []\n")
    path = tmp_path / "drills" / "grouped.yml"
    path.write_text(text)
    return path


def test_members_are_flattened_in_place_with_their_group(tmp_path: Path) -> None:
    runbook = load_runbook(_load(tmp_path))
    rows = [(s.index, s.name, s.group, s.line) for s in runbook.steps]
    assert rows == [
        (1, "crash", None, 5),
        (2, "fence", "fence and promote", 12),
        (3, "promote", "fence and promote", 17),
        (4, "settle", None, 23),
        (5, "back", "parallel-2", 26),  # the second group of steps:, unnamed
        (6, "tell", "parallel-2", 27),
        (7, "after", None, 28),
    ]
    fence, promote = runbook.steps[1:3]
    assert fence.on_failure.value == "continue" and promote.on_failure.value == "abort"
    assert (promote.retries, promote.retry_delay_s, promote.timeout_s) == (1, 2.0, 20.0)
    assert [(s.index, s.group) for s in runbook.rollback] == [
        (1, "rollback-parallel-1"), (2, "rollback-parallel-1")]


def test_batches_cut_a_list_into_what_runs_at_once(tmp_path: Path) -> None:
    runbook = load_runbook(_load(tmp_path))
    assert [[s.name for s in b] for b in batches(runbook.steps)] == [
        ["crash"], ["fence", "promote"], ["settle"], ["back", "tell"], ["after"]]
    assert [[s.name for s in b] for b in batches(runbook.rollback)] == [["undo a", "undo b"]]
    assert batches(()) == []


def test_plan_costs_a_group_as_its_longest_member(tmp_path: Path) -> None:
    plan = build_plan(load_runbook(_load(tmp_path)), None, "drill")
    # RTO path: after the disaster step up to and including the group holding
    # service_restored: fence/promote group max(10, 20*2+2) = 42, settle 3, group max(1, ?)
    # — the notify member has no timeout: unbounded, so the budget is unknown
    assert plan.unbounded_steps == ("tell",)
    assert plan.rto_path_budget_s is None
    groups = {g.name: g for g in plan.groups}
    assert groups["fence and promote"].budget_s == 42.0
    assert groups["fence and promote"].indexes == (2, 3)
    assert groups["parallel-2"].budget_s is None
    assert groups["rollback-parallel-1"].phase == "rollback"
    on_path = [p.step.name for p in plan.steps if p.on_rto_path]
    assert on_path == ["fence", "promote", "settle", "back", "tell"]


def test_plan_budget_sums_groups_at_their_max(tmp_path: Path) -> None:
    text = RUNBOOK.replace('{name: tell, notify: {message: "back at {now}"}}',
                           "{name: tell, pause: 4s}")
    plan = build_plan(load_runbook(_load(tmp_path, text)), None, "drill")
    assert plan.unbounded_steps == ()
    assert plan.rto_path_budget_s == 42.0 + 3.0 + 4.0  # not 10 + 42 + 3 + 1 + 4


def test_disaster_inside_a_group_starts_the_rto_path_after_the_group(tmp_path: Path) -> None:
    text = RUNBOOK.replace("""  - name: crash
    playbook: p.yml
    role: primary
    disaster: true
    timeout: 5s
  - name: fence and promote
    parallel:
""", """  - name: fence and promote
    parallel:
      - {name: crash, playbook: p.yml, role: primary, disaster: true, timeout: 5s}
""")
    runbook = load_runbook(_load(tmp_path, text))
    assert runbook.steps[0].group == "fence and promote" and runbook.steps[0].disaster
    plan = build_plan(runbook, None, "drill")
    assert [p.step.name for p in plan.steps if p.on_rto_path] == ["settle", "back", "tell"]


@pytest.mark.parametrize(("member", "fragment"), [
    ("{name: x, pause: 1s, gate: true}", "cannot have a gate"),
    ("{name: x, parallel: [{name: y, pause: 1s}]}", "parallel groups do not nest"),
])
def test_bad_members_are_located(tmp_path: Path, member: str, fragment: str) -> None:
    text = f"""name: bad
objectives: {{rto: 60s, rpo: 0s}}
steps:
  - parallel:
      - {{name: a, pause: 1s}}
      - {member}
"""
    with pytest.raises(ValidationFailed) as failed:
        load_runbook(_load(tmp_path, text))
    assert len(failed.value.problems) == 1, failed.value.problems
    assert ":6:" in failed.value.problems[0] and fragment in failed.value.problems[0]


def test_time_split_counts_overlapping_members_once() -> None:
    """Two automated members at once, and a manual member overlapping one of them: every
    instant of [T0, restored] counts once (a person's time first), so the parts add up."""
    from drdrill.events import Event
    from drdrill.measure.split import time_split

    def ev(type_: str, mono: float, **data: object) -> Event:
        return Event(type_, {"phase": "main", **data}, "2026-12-01T03:00:00.000Z", mono)

    events = [
        ev("step_started", 1.0, index=1, kind="playbook"),
        ev("step_started", 1.0, index=2, kind="playbook"),
        ev("step_started", 2.0, index=3, kind="manual"),
        ev("step_finished", 4.0, index=1),
        ev("step_finished", 5.0, index=3),
        ev("step_finished", 6.0, index=2),
        ev("step_started", 7.0, index=4, kind="pause"),
        ev("step_finished", 8.0, index=4),
    ]
    split = time_split(events, 0.0, 8.0)
    assert split is not None
    assert split.human_s == pytest.approx(3.0)  # 2..5
    assert split.automated_s == pytest.approx(1.0 + 1.0)  # 1..2 and 5..6
    assert split.waiting_s == pytest.approx(8.0 - 3.0 - 2.0)


def test_from_may_name_a_group(tmp_path: Path) -> None:
    """Incident mode ``--from GROUP`` starts at the group's first member."""
    from drdrill.engine.incident import check_from_step
    from drdrill.errors import BadInput

    runbook = load_runbook(_load(tmp_path))
    check_from_step(runbook, "incident", "fence and promote")
    check_from_step(runbook, "incident", "promote")
    with pytest.raises(BadInput):
        check_from_step(runbook, "incident", "no such group")


def test_plan_command_shows_each_member_with_its_group_budget(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _load(tmp_path)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    primary: {hosts: {a1: {ansible_connection: "
                         "local}}}\n    standby: {hosts: {b1: {ansible_connection: local}}}\n")
    drdrill = str(Path(sys.executable).parent / "drdrill")
    done = subprocess.run([drdrill, "plan", str(path), "-i", str(inventory)],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines()
            if "parallel 'fence and promote' (group budget 42.000s)" in line]
    assert [r.split()[1] for r in rows] == ["fence", "promote"], done.stdout
