"""Property: whatever bytes a runbook file holds, loading it ends in a Runbook or in
ValidationFailed whose every problem is one line starting ``<file>:<line>:<col>:`` — never
any other exception, never a traceback for the user."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drdrill.errors import ValidationFailed
from drdrill.executors.inventory import Inventory
from drdrill.runbook.loader import load_runbook, validate_runbook
from drdrill.runbook.model import Runbook
from fuzzkit import mutate_lines

BASE = """\
version: 1
name: pg-failover
environment: test
objectives: {rto: 30s, rpo: 0s}
roles:
  primary: primary
  standby: standby
vars: {table: drdrill_canary, retries: 3}
secrets: [db_password]
service:
  interval: 200ms
  probe: {type: postgres, dsn: "host=127.0.0.1 port=5432", query: "select 1", timeout: 2s}
canary:
  type: command
  interval: 100ms
  write: [sh, -c, "echo $DRDRILL_SEQ >> /tmp/c"]
  read: [cat, /tmp/c]
probes:
  writable: {type: postgres, dsn: "host=db", query: "select 1", expect: "t"}
  port_open: {type: tcp, host: 127.0.0.1, port: 5432, timeout: 1s}
  health: {type: http, url: "http://127.0.0.1:8080/health", expect_status: 200}
  marker: {type: command, argv: [test, -f, /tmp/x], expect_exit: 0, expect_output: "ok$"}
x-slow: &slow {timeout: 1m, retries: 1}
steps:
  - name: crash the primary
    playbook: crash.yml
    role: primary
    vars: {mode: immediate}
    disaster: true
    only: [drill]
    timeout: 60s
    checkpoint: primary_down
  - name: check standby
    probe: port_open
    <<: *slow
  - name: wait for service
    wait_for: writable
    interval: 200ms
    timeout: 30s
  - name: notify
    manual: "Notify the regulator"
  - name: settle
    pause: 2s
rollback:
  policy: on-abort
  steps:
    - name: fail back
      playbook: failback.yml
      role: standby
"""
LINES = BASE.splitlines()
NASTY = ["$(rm -rf /)", "`id`", "; ls |", "&& true", "'", '"', "{", "}", "[", "]", "*",
         "&a", "*a", "!!python/object:os.system", "%", "@", "\\", "\t", "\x00", "\x85",
         "\u2028", "\ufeff", "\ud800", ": ", "- ", "#", "|", ">", "<<: *slow", "..", "/etc"]
VALUES = ["1", "-1", "[1]", "{}", "null", "~", "true", "no", "5 minutes", "1e400", ".nan",
          "0x1F", "2024-01-01", "'../x.yml'", "/abs.yml", "!!binary aGk=", "&x [*x]",
          "*slow", "[a, b", '"\\ud800"', "''", "  ", "on"]

INVENTORY = Inventory(
    path=Path("inventory.yml"), sha256="0" * 64, hosts=("pg1",),
    groups=MappingProxyType({"primary": ("pg1",)}),
    host_vars=MappingProxyType({"pg1": MappingProxyType({})}))


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "playbooks").mkdir()
    for name in ("crash.yml", "failback.yml"):
        (root / "playbooks" / name).write_text("- hosts: all\n  tasks: []\n")
    (root / "drills").mkdir()
    return root / "drills"


def check(path: Path, use_inventory: bool) -> None:
    inventory = INVENTORY if use_inventory else None
    located = re.compile(re.escape(str(path)) + r":(\d+):(\d+): \S")
    line_count = path.read_bytes().count(b"\n") + 2
    try:
        outcome = load_runbook(path, inventory=inventory)
    except ValidationFailed as failed:
        assert failed.problems
        for problem in failed.problems:
            match = located.match(problem)
            assert match, problem
            assert 1 <= int(match.group(1)) <= line_count, problem
            assert int(match.group(2)) >= 1, problem
            assert "\n" not in problem and "\r" not in problem, problem
        assert validate_runbook(path, inventory=inventory) == failed.problems
    else:
        assert isinstance(outcome, Runbook)
        assert validate_runbook(path, inventory=inventory) == []


def test_base_is_valid(drills: Path) -> None:
    """The seed every mutation starts from must itself load, or the fuzzing proves little."""
    path = drills / "base.yml"
    path.write_text(BASE)
    assert isinstance(load_runbook(path), Runbook)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    return mutate_lines(draw, "\n".join(LINES), VALUES, NASTY, min_ops=1)


FUZZ = settings(max_examples=900, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=mutated(), use_inventory=st.booleans())
def test_mutated_valid_runbook(drills: Path, text: str, use_inventory: bool) -> None:
    path = drills / "mutated.yml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(path, use_inventory)


KEYS = ["version", "name", "objectives", "rto", "rpo", "steps", "playbook", "probe",
        "wait_for", "manual", "pause", "role", "roles", "type", "timeout", "interval",
        "probes", "canary", "service", "rollback", "policy", "disaster", "checkpoint",
        "vars", "only", "argv", "dsn", "host", "port", "url", "expect_output", "on", "x-y"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**30),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["30s", "1h30m", "250ms", "crash.yml", "../x.yml",
                                     "primary", "port_open", "tcp", "postgres", "command",
                                     "drill", "abort", "on-abort"]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner,
                        max_size=5)),
    max_leaves=25)


@FUZZ
@given(doc=documents, use_inventory=st.booleans())
def test_generated_runbook(drills: Path, doc: object, use_inventory: bool) -> None:
    path = drills / "generated.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    check(path, use_inventory)


@settings(max_examples=400, deadline=None, database=None)
@given(raw=st.one_of(st.binary(max_size=200),
                     st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_bytes(drills: Path, raw: bytes) -> None:
    path = drills / "raw.yml"
    path.write_bytes(raw)
    check(path, use_inventory=False)
