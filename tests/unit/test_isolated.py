"""``run --isolated`` without a lab: the isolation: section's validation (every way the
isolated path could reach production, at file:line, and the CLI's exit status), the runbook
an isolated run executes, and the clone's RPO from hand-written journal events."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from drdrill.engine.isolation import check_isolated, isolated_runbook, stamp
from drdrill.errors import BadInput, ValidationFailed
from drdrill.events import Event
from drdrill.executors.inventory import load_inventory
from drdrill.journal.record import build_record
from drdrill.measure.metrics import compute_results
from drdrill.measure.verdict import Verdict, decide, verdict_notes
from drdrill.runbook.loader import load_runbook, validate_runbook

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(Path(sys.executable).with_name("drdrill"))
SHIPPED = ROOT / "drills" / "postgres-failover.yml"

GOOD = """\
name: iso
objectives: {rto: 30s, rpo: 0s}
roles: {primary: primary, standby: standby, clone: clone}
service:
  probe: {type: postgres, dsn: "{{ service_dsn }}", query: "select 1"}
canary: {type: postgres, dsn: "{{ service_dsn }}"}
isolation:
  roles: {standby: clone}
  endpoints: {service_dsn: clone_dsn}
  steps:
    - name: build
      playbook: build.yml
      role: clone
  teardown:
    - name: remove
      playbook: remove.yml
      role: clone
steps:
  - name: crash
    playbook: crash.yml
    role: primary
    disaster: true
    isolated: false
  - name: promote
    playbook: promote.yml
    role: standby
rollback:
  steps:
    - name: undo
      playbook: crash.yml
      role: primary
      isolated: false
"""

INVENTORY = """\
all:
  vars:
    ansible_connection: local
    service_dsn: host=prod port=5432
    clone_dsn: host=clone port=5452
  children:
    primary: {hosts: {db1: {}}}
    standby: {hosts: {db2: {}}}
    clone: {hosts: {db2-clone: {}}}
"""


def _tree(tmp_path: Path, runbook: str = GOOD, inventory: str = INVENTORY) -> Path:
    (tmp_path / "drills").mkdir(exist_ok=True)
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    for name in ("build.yml", "remove.yml", "crash.yml", "promote.yml"):
        (tmp_path / "playbooks" / name).write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "drills" / "iso.yml").write_text(runbook)
    (tmp_path / "inventory.yml").write_text(inventory)
    return tmp_path / "drills" / "iso.yml"


def _line(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth occurrence of ``needle`` in ``text``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


def test_the_good_runbook_and_the_shipped_drill_validate(tmp_path: Path) -> None:
    path = _tree(tmp_path)
    inv = load_inventory(tmp_path / "inventory.yml")
    assert validate_runbook(path, inv) == []
    assert validate_runbook(SHIPPED, load_inventory(
        ROOT / "inventory.production-example.yml")) == []


def test_a_production_role_on_the_isolated_path_is_an_error_with_its_line(
        tmp_path: Path) -> None:
    text = GOOD.replace("    disaster: true\n    isolated: false\n", "")
    path = _tree(tmp_path, text)
    problems = validate_runbook(path)
    crash = _line(text, "- name: crash")
    assert any(p.startswith(f"{path}:{crash + 2}:") and "'primary', which is production"
               in p for p in problems), problems  # the role: line of the crash step
    # the fault itself is refused too, on the same step (no disaster: line left here)
    text2 = GOOD.replace("    isolated: false\n", "", 1)
    problems2 = validate_runbook(_tree(tmp_path, text2))
    assert any(f":{_line(text2, 'disaster: true')}:" in p and "inject the fault on production"
               in p for p in problems2), problems2


def test_a_rollback_step_on_production_is_refused(tmp_path: Path) -> None:
    text = GOOD[:GOOD.rindex("      isolated: false")]
    problems = validate_runbook(_tree(tmp_path, text))
    role_line = _line(text, "role: primary", 2)
    assert any(f":{role_line}:" in p and "rollback.steps[0].role" in p for p in problems), \
        problems


def test_unmapped_or_literal_endpoints_would_reach_production(tmp_path: Path) -> None:
    text = GOOD.replace('canary: {type: postgres, dsn: "{{ service_dsn }}"}',
                        'canary: {type: postgres, dsn: "host=prod port=5432"}').replace(
        'query: "select 1"', 'query: "select 1", host: "{{ other }}"')
    problems = validate_runbook(_tree(tmp_path, text))
    assert any(f":{_line(text, 'canary:')}:" in p and "literal dsn" in p for p in problems)
    assert any("{{ other }} would still reach production" in p for p in problems), problems


def test_isolation_steps_act_on_the_clone_only_and_the_clone_is_its_own_host(
        tmp_path: Path) -> None:
    text = GOOD.replace("      playbook: build.yml\n      role: clone",
                        "      playbook: build.yml\n      role: standby")
    problems = validate_runbook(_tree(tmp_path, text))
    assert any(f":{_line(text, 'role: standby')}:" in p and "isolation steps act on the "
               "clone only" in p for p in problems), problems
    shared = INVENTORY.replace("clone: {hosts: {db2-clone: {}}}", "clone: {hosts: {db2: {}}}")
    path = _tree(tmp_path, GOOD, shared)
    problems = validate_runbook(path, load_inventory(tmp_path / "inventory.yml"))
    assert any("resolves to db2, a host of production role 'standby'" in p
               for p in problems), problems


def test_an_undefined_clone_endpoint_is_an_error_for_an_isolated_run(tmp_path: Path) -> None:
    path = _tree(tmp_path, inventory=INVENTORY.replace("    clone_dsn: host=clone port=5452\n",
                                                       ""))
    inventory = load_inventory(tmp_path / "inventory.yml")
    problems = validate_runbook(path, inventory, isolated=True)
    assert any(f":{_line(GOOD, 'endpoints:')}:" in p and "'clone_dsn' is not defined" in p
               for p in problems), problems
    # an inventory without a clone (real servers, the SSH hosts) still runs the normal drill
    assert validate_runbook(path, inventory) == []


def test_the_isolated_runbook_acts_on_the_clone_with_the_clone_endpoints(
        tmp_path: Path) -> None:
    path = _tree(tmp_path)
    inv = load_inventory(tmp_path / "inventory.yml")
    prod = load_runbook(path, inv, strict=True)
    assert prod.canary is not None and prod.canary.options["dsn"] == "host=prod port=5432"
    runbook = isolated_runbook(load_runbook(path, inv, strict=True, isolated=True))
    assert runbook.canary is not None and runbook.canary.options["dsn"] == "host=clone port=5452"
    assert runbook.service is not None
    assert runbook.service.probe.options["dsn"] == "host=clone port=5452"
    assert [(s.name, s.role, s.index) for s in runbook.steps] == [("promote", "clone", 2)]
    assert runbook.rollback == ()
    assert stamp(runbook)["skipped_steps"] == ["crash", "undo"]
    assert runbook.isolation is not None
    assert [s.name for s in runbook.isolation.steps] == ["build"]


def test_isolated_refuses_a_runbook_without_isolation_and_incident_mode(
        tmp_path: Path) -> None:
    plain = load_runbook(ROOT / "drills" / "local-smoke.yml")
    with pytest.raises(BadInput, match="no isolation: section"):
        check_isolated(plain, "drill", None, None)
    runbook = load_runbook(_tree(tmp_path))
    with pytest.raises(BadInput, match="--mode incident"):
        check_isolated(runbook, "incident", None, None)


def test_cli_validate_and_run_exit_2_on_an_isolated_path_touching_production(
        tmp_path: Path) -> None:
    text = GOOD.replace("    disaster: true\n    isolated: false\n", "")
    path = _tree(tmp_path, text)
    done = subprocess.run([DRDRILL, "validate", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert f"{path}:{_line(text, '- name: crash') + 2}:" in done.stderr + done.stdout
    run = subprocess.run([DRDRILL, "run", str(path), "-i", str(tmp_path / "inventory.yml"),
                          "--isolated", "--yes", "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "which is production" in run.stderr + run.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _clone_events(fact: dict[str, object] | None) -> list[Event]:
    events = [Event("run_started", {"mode": "drill", "objectives": {"rto_s": 15, "rpo_s": 0},
                                    "isolated": {"skipped_steps": ["crash"]}},
                    "2026-12-01T03:00:00.000Z", 0.0)]
    if fact is not None:
        events.append(Event("fact", {"name": "isolated_clone",
                                     "value": "isolated clone: " + json.dumps(fact)},
                            "2026-12-01T03:00:04.000Z", 4.0))
    events += [Event("t0", {"source": "isolated_clone", "step": None},
                     "2026-12-01T03:00:05.000Z", 5.0),
               Event("recovery_started", {"index": 2, "name": "promote"},
                     "2026-12-01T03:00:05.100Z", 5.1),
               Event("probe", {"ok": False, "started_mono": 5.2, "duration_s": 0.01},
                     "2026-12-01T03:00:05.210Z", 5.21),
               Event("probe", {"ok": True, "started_mono": 5.9, "duration_s": 0.01},
                     "2026-12-01T03:00:05.910Z", 5.91)]
    return events


def test_the_clone_rpo_comes_from_its_lag_not_from_the_canary() -> None:
    exact = compute_results(_clone_events({"lag_bytes": 0, "lag_s": 0, "lag_s_kind": "exact"}),
                            15.0, 0.0)
    assert (exact.t0_source, exact.rto_s) == ("isolated_clone", 0.9)
    assert (exact.rpo_basis, exact.rpo_s, exact.rpo_met) == ("clone_lag", 0.0, True)
    bound = compute_results(_clone_events({"lag_bytes": 4096, "lag_s": 0.25,
                                           "lag_s_kind": "upper_bound"}), 15.0, 0.0)
    assert (bound.rpo_basis, bound.rpo_s, bound.rpo_bound_s, bound.rpo_met) == (
        "clone_lag", None, 0.25, None)  # a bound above the objective proves nothing
    missing = compute_results(_clone_events(None), 15.0, 0.0)
    assert (missing.rpo_basis, missing.rpo_s) == ("not_measured", None)
    assert "no isolated_clone fact" in str(missing.rpo_reason)


def test_a_clone_lag_bound_above_the_objective_is_reported_not_judged() -> None:
    """Under writes the clone's lag is a bound > 0: with rpo 0 the run used to exit 1 for a
    property of the copy. Now the record notes it and the verdict does not fail on it; a
    write the recovered clone acknowledged and then lost still fails the run."""
    events = _clone_events({"lag_bytes": 4096, "lag_s": 0.25, "lag_s_kind": "upper_bound"})
    bound = compute_results(events, 15.0, 0.0)
    assert decide(bound, []) == Verdict("passed", ())
    notes = verdict_notes(bound)
    assert len(notes) == 1 and "RPO not judged (isolated)" in notes[0] and "0.25s" in notes[0]
    assert "reported, not judged" in str(bound.rpo_reason)
    assert build_record(events)["verdict_notes"] == notes
    within = compute_results(events, 15.0, 1.0)
    assert (within.rpo_met, verdict_notes(within)) == (True, [])
    lost = replace(bound, lost_writes=2)
    assert decide(lost, []).reasons == (
        "2 acknowledged writes lost on the recovered clone (isolated)",)
    assert verdict_notes(compute_results(_clone_events(
        {"lag_bytes": 0, "lag_s": 0, "lag_s_kind": "exact"}), 15.0, 0.0)) == []


def test_the_record_says_isolated_with_what_was_cloned() -> None:
    events = _clone_events({"cloned_from": "pg2 (127.0.0.1:5433)", "lag_bytes": 0,
                            "cloned_at": "2026-12-01T03:00:04.000Z", "lag_s": 0,
                            "lag_s_kind": "exact", "clone_s": "1.5"})
    events.append(Event("isolation_finished", {"teardown": "ok"},
                        "2026-12-01T03:00:09.000Z", 9.0))
    iso = build_record(events)["isolated"]
    assert iso["banner"] == "ISOLATED TEST — production was not failed over"
    assert (iso["cloned_from"], iso["clone_s"], iso["lag_bytes"], iso["teardown"]) == (
        "pg2 (127.0.0.1:5433)", 1.5, 0, "ok")
    assert iso["skipped_steps"] == ["crash"]
    assert build_record(events[:1])["isolated"]["teardown"] == "not run"


def test_the_shipped_drill_isolated_probes_the_clone_of_the_production_example(
        tmp_path: Path) -> None:
    inv = load_inventory(ROOT / "inventory.production-example.yml")
    runbook = isolated_runbook(load_runbook(SHIPPED, inv, strict=True, isolated=True))
    assert runbook.canary is not None
    assert "port=5452" in runbook.canary.options["dsn"]  # the clone's, never 5432
    assert {s.role for s in runbook.steps} == {"clone", None}
    assert runbook.rollback == ()
    # the shipped drill with the fence step's isolated: false removed: refused, at its role
    text = SHIPPED.read_text()
    marker = next(line for line in text.splitlines(keepends=True)
                  if "isolated: false  # fencing a real node" in line)
    copy = tmp_path / "touching.yml"
    copy.write_text(text.replace(marker, ""))
    with pytest.raises(ValidationFailed) as info:
        load_runbook(copy, inv, playbook_dir=ROOT / "playbooks")
    lines = text.replace(marker, "").splitlines()
    fence = next(i for i, line in enumerate(lines) if "name: fence the old primary" in line)
    role = next(i for i in range(fence, len(lines)) if "role: primary" in lines[i]) + 1
    assert any(p.startswith(f"{copy}:{role}:") and "which is production" in p
               for p in info.value.problems), info.value.problems
