"""Property: generated and mutated runbooks *and inventories* through
``build_plan(load_runbook(...), load_inventory(...), mode)`` end in a Plan or in a
DrdrillError whose message is located (it names the file at fault, and for a runbook also
line and column) — never any other exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drdrill.engine.plan import Plan, build_plan
from drdrill.errors import DrdrillError, ValidationFailed
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.loader import load_runbook
from fuzzkit import mutate_lines

RUNBOOK = """\
version: 1
name: plan-fuzz
environment: test
objectives: {rto: 30s, rpo: 0s}
roles:
  primary: primary
  standby: "standby:pg3"
vars: {table: canary, note: "$(touch pwned)"}
secrets: [db_password]
service:
  interval: 200ms
  probe: {type: command, argv: [test, -f, up], timeout: 1s}
probes:
  port_open: {type: tcp, host: 127.0.0.1, port: 5432, timeout: 1s}
steps:
  - name: crash
    playbook: crash.yml
    role: primary
    disaster: true
    only: [drill]
    timeout: 60s
    retries: 1
  - name: check
    probe: port_open
  - name: wait
    wait_for: {type: command, argv: [test, -f, up]}
    interval: 100ms
    timeout: 30s
    checkpoint: service_restored
  - name: promote
    playbook: crash.yml
    role: standby
  - name: settle
    pause: 2s
rollback:
  policy: always
  steps:
    - name: fail back
      playbook: crash.yml
      role: pg1
"""
INVENTORY = """\
all:
  vars:
    ansible_connection: local
    drdrill_environment: test
  children:
    primary:
      hosts:
        pg1: {ansible_host: 127.0.0.1, pg_data: /tmp/pg1}
    standby:
      hosts:
        pg2: {ansible_port: 22}
        pg3: {}
"""
NASTY = ["$(touch pwned)", "`id`", "; ls |", "'", '"', "{", "}", "[", "]", "*", "&a", "*a",
         "!!python/object:os.system", "%", "\\", "\t", "\x00", "\x85", "\ufeff", ": ", "- ",
         "#", "|", ">", "..", "/etc", ":", "[pg1]", "!vault |", "{{ lookup('pipe', 'id') }}",
         "ansible_connection: ssh", "all", "ungrouped", "pg1:pg2", "&&", "~"]
VALUES = ["1", "-1", "[1]", "{}", "null", "~", "true", "no", "1e400", ".nan", "0x1F",
          "2024-01-01", "'../x.yml'", "/abs.yml", "''", "  ", "on", "primary:standby",
          "[a, b", "{hosts: null}", "{hosts: []}", "!!binary aGk="]
KEYS = ["all", "hosts", "children", "vars", "primary", "standby", "pg1", "pg2",
        "ansible_connection", "drdrill_environment", "ungrouped"]


def _mutate(draw: st.DrawFn, text: str) -> str:
    return mutate_lines(draw, text, VALUES, NASTY)


@st.composite
def mutated_runbook(draw: st.DrawFn) -> str:
    return _mutate(draw, RUNBOOK)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.text(max_size=10),
                    st.sampled_from(["127.0.0.1", "local", "ssh", "pg1", "production"]))
inventory_docs = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS),
                                                      st.text(max_size=5)),
                                            inner, max_size=4)),
    max_leaves=20)


@st.composite
def inventory_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutated"] * 4 + ["generated", "ini"]))
    if kind == "mutated":
        return _mutate(draw, INVENTORY)
    if kind == "generated":
        return yaml.safe_dump(draw(inventory_docs), allow_unicode=True)
    hosts = draw(st.lists(st.sampled_from(["pg1", "pg2 ansible_port=22", "[primary]",
                                           "[standby]", "[standby:children]", "primary",
                                           "pg3 x=$(id)", "bad line [", "pg[1:3]"]),
                          max_size=6))
    return "\n".join(hosts) + "\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("planfuzz")
    (base / "playbooks").mkdir()
    (base / "playbooks" / "crash.yml").write_text("- hosts: all\n  tasks: []\n")
    (base / "drills").mkdir()
    return base


def _check(runbook_path: Path, inventory_path: Path, mode: str) -> None:
    try:
        plan = build_plan(load_runbook(runbook_path, load_inventory(inventory_path)),
                          load_inventory(inventory_path), mode)
    except ValidationFailed as failed:
        located = re.compile(re.escape(str(runbook_path)) + r":\d+:\d+: \S")
        assert failed.problems
        for problem in failed.problems:
            assert located.match(problem), problem
    except DrdrillError as error:
        assert str(error).startswith((f"{inventory_path}:", f"{runbook_path}:")), str(error)
    else:
        assert isinstance(plan, Plan)
        assert plan.mode == mode


def test_seeds_plan(root: Path) -> None:
    runbook, inventory = root / "drills" / "seed.yml", root / "inventory.yml"
    runbook.write_text(RUNBOOK)
    inventory.write_text(INVENTORY)
    plan = build_plan(load_runbook(runbook, load_inventory(inventory)),
                      load_inventory(inventory), "drill")
    assert [p.hosts for p in plan.steps][:1] == [("pg1",)]
    assert plan.steps[3].hosts == ("pg2", "pg3")


FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(runbook=mutated_runbook(), inventory=inventory_text(),
       mode=st.sampled_from(["drill", "incident"]))
def test_mutated_runbook_and_inventory_plan(root: Path, runbook: str, inventory: str,
                                            mode: str) -> None:
    runbook_path, inventory_path = root / "drills" / "fuzz.yml", root / "inventory.yml"
    runbook_path.write_bytes(runbook.encode("utf-8", "surrogatepass"))
    inventory_path.write_bytes(inventory.encode("utf-8", "surrogatepass"))
    _check(runbook_path, inventory_path, mode)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=120))
def test_arbitrary_inventory_bytes(root: Path, raw: bytes) -> None:
    runbook_path, inventory_path = root / "drills" / "seed2.yml", root / "raw-inventory.yml"
    runbook_path.write_text(RUNBOOK)
    inventory_path.write_bytes(raw)
    _check(runbook_path, inventory_path, "drill")
