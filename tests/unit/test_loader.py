"""load_runbook / validate_runbook: the model they build and every problem they report."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest

from drdrill.errors import ValidationFailed
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.loader import default_playbook_dir, load_runbook, validate_runbook
from drdrill.runbook.model import OnFailure, RollbackPolicy, StepKind

FULL = """\
version: 1
name: pg-failover
owner: dba@example.com
environment: staging
objectives: {rto: 1m30s, rpo: 250ms}
roles: {primary: primary, standby: "standby"}
vars: {table: canary, on: yes}
secrets: [db_password]
service:
  interval: 200ms
  probe: {type: tcp, host: 127.0.0.1, port: 5432, timeout: 2s}
canary: {type: postgres, dsn: "host=db", table: marks}
probes:
  writable: {type: postgres, dsn: "host=db", query: "select 1", expect: "1"}
steps:
  - name: crash the primary
    playbook: crash.yml
    role: primary
    vars: {mode: immediate}
    disaster: true
    only: [drill]
    timeout: 60s
    checkpoint: primary_down
  - name: wait writable
    wait_for: writable
    interval: 100ms
    timeout: 30s
  - name: port open
    probe: {type: tcp, host: 127.0.0.1, port: 5433}
    idempotent: false
  - name: call regulator
    manual: Call the regulator
    gate: true
    on_failure: continue
  - name: settle
    pause: 2s
rollback:
  policy: always
  steps:
    - name: fail back
      playbook: failback.yml
      role: standby
      retries: 2
      retry_delay: 3s
"""


def write_tree(tmp_path: Path, text: str, playbooks: tuple[str, ...] = ("crash.yml",
                                                                       "failback.yml")) -> Path:
    """Runbook at tmp/drills/rb.yml, playbooks in tmp/playbooks/."""
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    for name in playbooks:
        (tmp_path / "playbooks" / name).write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "drills").mkdir(exist_ok=True)
    path = tmp_path / "drills" / "rb.yml"
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ValidationFailed) as failed:
        load_runbook(path, **kwargs)  # type: ignore[arg-type]
    assert validate_runbook(path, **kwargs) == failed.value.problems  # type: ignore[arg-type]
    return failed.value.problems


# --- the model -----------------------------------------------------------------------------


def test_model_built_from_full_runbook(tmp_path: Path) -> None:
    path = write_tree(tmp_path, FULL)
    rb = load_runbook(path)
    assert rb.name == "pg-failover" and rb.environment == "staging"
    assert rb.path == path
    assert rb.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rb.objectives.rto_s == 90.0 and rb.objectives.rpo_s == 0.25
    assert isinstance(rb.vars, MappingProxyType)
    assert dict(rb.vars) == {"table": "canary", "on": True}  # key "on" stays a string
    assert rb.secrets == ("db_password",)
    assert rb.playbook_dir == (tmp_path / "playbooks").absolute()
    assert rb.service is not None and rb.service.interval_s == 0.2
    assert rb.service.probe.type == "tcp" and rb.service.probe.timeout_s == 2.0
    assert dict(rb.service.probe.options) == {"host": "127.0.0.1", "port": 5432}
    assert rb.canary is not None and rb.canary.type == "postgres"
    assert rb.canary.interval_s == 0.2 and rb.canary.timeout_s == 2.0
    assert dict(rb.canary.options) == {"dsn": "host=db", "table": "marks"}
    assert rb.probes["writable"].name == "writable"

    kinds = [s.kind for s in rb.steps]
    assert kinds == [StepKind.PLAYBOOK, StepKind.WAIT_FOR, StepKind.PROBE, StepKind.MANUAL,
                     StepKind.PAUSE]
    assert [s.index for s in rb.steps] == [1, 2, 3, 4, 5]
    assert [s.line for s in rb.steps] == [16, 24, 28, 31, 35]
    crash, wait, port, call, settle = rb.steps
    assert crash.playbook == "crash.yml" and crash.role == "primary"
    assert dict(crash.vars) == {"mode": "immediate"} and crash.disaster
    assert crash.only == ("drill",) and crash.timeout_s == 60.0
    assert crash.checkpoint == "primary_down" and not crash.idempotent
    assert rb.disaster_step is crash
    assert wait.probe is rb.probes["writable"] and wait.interval_s == 0.1
    assert wait.timeout_s == 30.0 and wait.idempotent
    assert port.probe is not None and port.probe.name == "" and port.probe.timeout_s == 5.0
    assert not port.idempotent  # explicit false wins over the probe default
    assert call.instruction == "Call the regulator" and call.gate and not call.idempotent
    assert call.on_failure is OnFailure.CONTINUE and call.only == ("drill", "incident")
    assert settle.pause_s == 2.0 and settle.idempotent and settle.timeout_s is None

    assert rb.rollback_policy is RollbackPolicy.ALWAYS
    (back,) = rb.rollback
    assert back.index == 1 and back.line == 40 and back.retries == 2
    assert back.retry_delay_s == 3.0 and back.role == "standby"
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.name = "x"  # type: ignore[misc]


def test_defaults_of_a_minimal_runbook(tmp_path: Path) -> None:
    rb = load_runbook(write_tree(tmp_path, """\
        name: minimal
        objectives: {rto: 30, rpo: 0}
        steps:
          - {name: settle, pause: 1, retries: 2.0}
          - {name: check, probe: {type: tcp, host: h, port: 5432.0}}
        """))
    assert rb.environment == "test" and rb.service is None and rb.canary is None
    assert rb.rollback == () and rb.rollback_policy is RollbackPolicy.ON_ABORT
    assert rb.objectives.rto_s == 30.0 and rb.steps[0].pause_s == 1.0
    assert type(rb.steps[0].retries) is int and rb.steps[0].retries == 2
    assert rb.steps[1].probe is not None
    assert type(rb.steps[1].probe.options["port"]) is int


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    rb = load_runbook(write_tree(tmp_path, """\
        name: merged
        objectives: {rto: 30s, rpo: 0s}
        x-common: &common {timeout: 1m, retries: 1}
        steps:
          - name: a
            pause: 1s
            <<: *common
            retries: 3
        """))
    assert rb.steps[0].timeout_s == 60.0 and rb.steps[0].retries == 3


# --- every problem, located ------------------------------------------------------------------


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = write_tree(tmp_path, """\
        name: many
        objectives: {rto: soon, rpo: 0s}
        steps:
          - name: a
            pause: 1s
            timout: 2s
          - name: a
            wait_for: nowhere
          - name: b
            playbook: missing.yml
            role: primary
        """)
    problems = problems_of(path)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "objectives.rto", "steps[0].timout", "steps[1].name", "steps[1].wait_for",
        "steps[2].playbook", "steps[2].role"]
    assert problems[0].startswith(f"{path}:2:19: objectives.rto: 'soon' is not a duration")
    assert problems[3] == (f"{path}:8:15: steps[1].wait_for: probe 'nowhere' is not defined "
                           "under probes: — define it under probes: or write the probe inline")


@pytest.mark.parametrize("playbook, fragment", [
    ("../outside.yml", "leaves the playbooks directory (..)"),
    ("sub/../../outside.yml", "leaves the playbooks directory (..)"),
    ("/etc/passwd", "is an absolute path"),
    ("escape.yml", "resolves outside"),
    ("escape-dir/x.yml", "resolves outside"),
])
def test_playbook_must_stay_inside_playbook_dir(tmp_path: Path, playbook: str,
                                                fragment: str) -> None:
    path = write_tree(tmp_path, f"""\
        name: escape
        objectives: {{rto: 30s, rpo: 0s}}
        roles: {{db: db}}
        steps:
          - {{name: run, playbook: "{playbook}", role: db}}
        """)
    (tmp_path / "outside.yml").write_text("- hosts: all\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yml").write_text("- hosts: all\n")
    os.symlink(tmp_path / "outside.yml", tmp_path / "playbooks" / "escape.yml")
    os.symlink(tmp_path / "elsewhere", tmp_path / "playbooks" / "escape-dir")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:5:27: steps[0].playbook: {playbook!r} {fragment}")


def test_symlink_that_stays_inside_is_fine(tmp_path: Path) -> None:
    path = write_tree(tmp_path, """\
        name: inside
        objectives: {rto: 30s, rpo: 0s}
        roles: {db: db}
        steps:
          - {name: run, playbook: alias.yml, role: db}
        """)
    os.symlink(tmp_path / "playbooks" / "crash.yml", tmp_path / "playbooks" / "alias.yml")
    assert load_runbook(path).steps[0].playbook == "alias.yml"


def test_playbook_dir_default_and_fallback(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tree(tmp_path, "name: x\n")
    assert default_playbook_dir(path) == tmp_path / "playbooks"
    lone = tmp_path / "lone" / "drills" / "rb.yml"
    lone.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert default_playbook_dir(lone) == tmp_path / "playbooks"
    monkeypatch.chdir(lone.parent)
    assert default_playbook_dir(lone) == lone.parent / "playbooks"


def test_explicit_playbook_dir(tmp_path: Path) -> None:
    path = write_tree(tmp_path, FULL, playbooks=())
    other = tmp_path / "other"
    other.mkdir()
    for name in ("crash.yml", "failback.yml"):
        (other / name).write_text("- hosts: all\n")
    assert len(problems_of(path)) == 2
    assert load_runbook(path, playbook_dir=other).playbook_dir == other.absolute()


# --- roles against an inventory --------------------------------------------------------------

INVENTORY = """\
all:
  children:
    primary:
      hosts: {pg1: {ansible_connection: local}}
    standby:
      hosts: {pg2: {ansible_connection: local}}
    empty: {}
"""

ROLES = """\
name: roles
objectives: {rto: 30s, rpo: 0s}
roles: {db: "primary:standby", ghost: nothing_here}
steps:
  - {name: a, playbook: crash.yml, role: db}
  - {name: b, playbook: crash.yml, role: standby}
  - {name: c, playbook: crash.yml, role: ghost}
  - {name: d, playbook: crash.yml, role: empty}
"""


def test_roles_without_inventory_must_be_defined(tmp_path: Path) -> None:
    path = write_tree(tmp_path, ROLES)
    problems = problems_of(path)
    assert [p.split(": ", 2)[1] for p in problems] == ["steps[1].role", "steps[3].role"]
    assert problems[0].startswith(
        f"{path}:6:42: steps[1].role: role 'standby' is not defined under roles:")


def test_roles_resolved_against_inventory(tmp_path: Path) -> None:
    path = write_tree(tmp_path, ROLES)
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text(INVENTORY)
    inventory = load_inventory(inv_path)
    problems = problems_of(path, inventory=inventory)
    assert problems == [
        f"{path}:7:42: steps[2].role: role 'ghost' (pattern 'nothing_here') matches no host "
        f"in inventory {inv_path} — add that group or host to the inventory, or map the "
        "role to one under roles:",
        f"{path}:8:42: steps[3].role: role 'empty' matches no host in inventory {inv_path} — "
        "add that group or host to the inventory, or map the role to one under roles:",
    ]
    fixed = ROLES.replace("nothing_here", "pg1").replace("role: empty", "role: primary")
    path.write_text(fixed)
    assert [s.role for s in load_runbook(path, inventory=inventory).steps] == [
        "db", "standby", "ghost", "primary"]


# --- files that are not runbooks ------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (b"", "1:1: the runbook is empty"),
    (b"# only a comment\n", "1:1: the runbook is empty"),
    (b"---\n...\n", "1:1: the runbook is empty"),
    (b"- a\n- b\n", "1:1: the top level must be a mapping (name:, objectives:, steps: ...), "
                    "not a list"),
    (b"just text\n", "1:1: the top level must be a mapping"),
    (b"name: x\nsteps: [\n",
     "3:1: invalid YAML: while parsing a flow node, expected the node content"),
    (b"name: x\n  bad: indent\n", "2:6: invalid YAML: mapping values are not allowed here"),
    (b"a: 1\n---\nb: 2\n", "2:1: invalid YAML: expected a single document"),
    (b"name: \xff\xfe\n", "1:7: the file is not UTF-8 text"),
    (b"name: a\x07b\n", "1:8: invalid YAML: special characters are not allowed"),
    (b"name: !!python/object:os.system x\n", "1:7: invalid YAML: could not determine a "
                                             "constructor"),
    (b"? [a]\n: b\n", "1:3: invalid YAML: a key must be a plain string"),
    (b"a: &x [*x]\n", "1:4: a YAML alias refers to a node that contains it"),
    (b"name: x\nobjectives: {rto: .nan, rpo: 0}\nsteps: [{name: a, pause: 1}]\n",
     "2:19: objectives.rto: nan is not a usable number"),
    (b"name: x\nobjectives: {rto: 1s, rpo: 0}\nsteps: [{name: a, pause: 99999999999h}]\n",
     "3:26: steps[0].pause: '99999999999h' is too long"),
    (b"name: x\nobjectives: {rto: 1s, rpo: 0}\nsteps: [{name: a, pause: " + b"9" * 400
     + b"s}]\n", "3:26: steps[0].pause: '99999"),
])
def test_unusable_files_give_one_located_line(tmp_path: Path, content: bytes,
                                              expected: str) -> None:
    path = tmp_path / "rb.yml"
    path.write_bytes(content)
    problems = validate_runbook(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{expected}"), problems


def test_alias_explosion_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "rb.yml"
    path.write_text("\n".join(lines) + "\n")
    (problem,) = validate_runbook(path)
    assert "too many values" in problem and problem.startswith(f"{path}:")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    assert validate_runbook(missing) == [f"{missing}:1:1: runbook not found — check the path"]
    assert validate_runbook(tmp_path) == [
        f"{tmp_path}:1:1: is a directory, not a runbook file — name a .yml file"]


def test_wrong_types_are_located(tmp_path: Path) -> None:
    path = write_tree(tmp_path, """\
        name: [x]
        objectives: 30s
        steps:
          - just a string
        rollback: {policy: never, steps: {}}
        """)
    assert problems_of(path) == [
        f"{path}:1:7: name: expected a string, got a list ['x']",
        f"{path}:2:13: objectives: expected a mapping, got a string '30s'",
        f"{path}:4:5: steps[0]: expected a mapping, got a string 'just a string'",
        f"{path}:5:34: rollback.steps: expected a list, got a mapping {{}}",
    ]
