"""Endpoints come from the inventory: ``{{ name }}`` in probe, canary and named-probe options
resolved from the inventory's all vars, the runbook's vars and -e — as data, located errors."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from drdrill.errors import ValidationFailed
from drdrill.executors.inventory import load_inventory
from drdrill.runbook.loader import load_runbook, validate_runbook

ROOT = Path(__file__).resolve().parents[2]

RUNBOOK = """\
name: endpoints
objectives: {rto: 30s, rpo: 0s}
roles: {primary: primary}
vars: {table: marks}
secrets: [db_password]
service:
  probe: {type: postgres, dsn: "{{ service_dsn }}", query: "select 1"}
canary: {type: postgres, dsn: "{{service_dsn}} password={{ db_password }}", table: marks}
probes:
  writable: {type: postgres, dsn: "{{ service_dsn }}", query: "select 1", expect: "1"}
steps:
  - name: check
    wait_for: {type: tcp, host: "{{ db_host }}", port: 5432}
  - name: work
    playbook: work.yml
    role: primary
"""

INVENTORY = """\
all:
  vars:
    db_host: 10.0.0.7
    service_dsn: "host={{ db_host }} port=5432 dbname=bank target_session_attrs=read-write"
  children:
    primary: {hosts: {db1: {service_dsn: "host=only-for-db1"}}}
"""


def _tree(tmp_path: Path, runbook: str = RUNBOOK, inventory: str = INVENTORY
          ) -> tuple[Path, Path]:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "work.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "drills").mkdir()
    path = tmp_path / "drills" / "rb.yml"
    path.write_text(textwrap.dedent(runbook))
    inv = tmp_path / "inventory.yml"
    inv.write_text(inventory)
    return path, inv


def _problems(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ValidationFailed) as failed:
        load_runbook(path, **kwargs)  # type: ignore[arg-type]
    return failed.value.problems


def test_resolved_from_the_all_group_rendered(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRDRILL_SECRET_DB_PASSWORD", "s3cr3t")
    path, inv = _tree(tmp_path)
    rb = load_runbook(path, load_inventory(inv), strict=True)
    dsn = "host=10.0.0.7 port=5432 dbname=bank target_session_attrs=read-write"
    assert rb.service is not None and rb.service.probe.options["dsn"] == dsn  # all, not db1
    assert rb.canary is not None and dict(rb.canary.options) == {
        "dsn": f"{dsn} password=s3cr3t", "table": "marks"}
    assert rb.probes["writable"].options["dsn"] == dsn
    probe = rb.steps[0].probe
    assert probe is not None and probe.options["host"] == "10.0.0.7"


def test_precedence_inventory_then_runbook_vars_then_e(tmp_path: Path) -> None:
    path, inv = _tree(tmp_path, RUNBOOK.replace("vars: {table: marks}",
                                                "vars: {table: marks, db_host: from-runbook}"))
    inventory = load_inventory(inv)
    rb = load_runbook(path, inventory)
    step_probe = rb.steps[0].probe
    assert step_probe is not None and step_probe.options["host"] == "from-runbook"
    rb = load_runbook(path, inventory, extra_vars={"db_host": "from-e",
                                                   "service_dsn": "host=e"})
    step_probe = rb.steps[0].probe
    assert step_probe is not None and step_probe.options["host"] == "from-e"
    assert rb.service is not None and rb.service.probe.options["dsn"] == "host=e"


def test_values_are_data_never_code(tmp_path: Path) -> None:
    path, inv = _tree(tmp_path)
    nasty = "host=x'; $(touch /tmp/pwned) `id` {{ other }} {% if %}"
    rb = load_runbook(path, load_inventory(inv), extra_vars={"service_dsn": nasty})
    assert rb.service is not None and rb.service.probe.options["dsn"] == nasty


def test_undefined_name_is_a_located_problem_with_the_others(tmp_path: Path) -> None:
    text = RUNBOOK.replace('"{{ service_dsn }}", query', '"{{ servce_dsn }}", query', 1)
    text = text.replace("playbook: work.yml", "playbook: missing.yml")
    path, inv = _tree(tmp_path, text)
    problems = _problems(path, inventory=load_inventory(inv))
    assert problems == [
        f"{path}:7:32: service.probe.dsn: {{{{ servce_dsn }}}} is not defined — define "
        f"servce_dsn in the inventory's all vars ({inv}) or pass -e servce_dsn=...",
        f"{path}:15:15: steps[1].playbook: 'missing.yml' not found in "
        f"{(tmp_path / 'playbooks').resolve()} — create it or fix the name",
    ]
    assert validate_runbook(path, load_inventory(inv)) == problems
    assert validate_runbook(path, load_inventory(inv), extra_vars={"servce_dsn": "x"}) == [
        problems[1]]
    assert validate_runbook(path) == [problems[1]]  # without -i: not checked


@pytest.mark.parametrize("template", [
    "{{ lookup('pipe', 'id') }}", "{{ service_dsn | upper }}", "{{ a.b }}", "{{ 1x }}"])
def test_only_plain_names_are_substituted(tmp_path: Path, template: str) -> None:
    path, inv = _tree(tmp_path, RUNBOOK.replace('"{{ db_host }}"', json.dumps(template)))
    (problem,) = _problems(path, inventory=load_inventory(inv))
    assert problem.startswith(f"{path}:13:33: steps[0].wait_for.host: {template!r} is not a "
                              "variable name — only {{ name }} is substituted here")


def test_unrenderable_or_unsupplied_values_fail_only_when_used(
        tmp_path: Path) -> None:
    inventory = INVENTORY.replace(
        'db_host: 10.0.0.7',
        "db_host: \"{{ lookup('ansible.builtin.file', '/nonexistent/lab.env.json') }}\"")
    path, inv = _tree(tmp_path, inventory=inventory)
    loaded = load_inventory(inv)
    assert validate_runbook(path, loaded) == []  # validate: the names exist
    problems = _problems(path, inventory=loaded, strict=True)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "service.probe.dsn", "canary.dsn", "canary.dsn", "probes.writable.dsn",
        "steps[0].wait_for.host"]
    assert "{{ db_password }} is a secret that is not supplied — set " \
           "DRDRILL_SECRET_DB_PASSWORD or pass -e db_password=..." in problems[2]
    assert "{{ db_host }} is defined in the inventory but cannot be rendered now" in problems[4]
    assert "/nonexistent/lab.env.json" in problems[4]


def test_no_shipped_runbook_holds_a_lab_port() -> None:
    shipped = sorted((ROOT / "drills").glob("*.yml"))
    assert shipped
    for path in [*shipped, ROOT / "tests/fixtures/drills/postgres-failover-lagging.yml"]:
        found = re.findall(r"\b543\d\d\b", path.read_text())
        assert not found, f"{path.name} holds lab port(s) {found}: use {{{{ service_dsn }}}}"


def test_shipped_drills_follow_a_lab_on_other_ports(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.env.json").write_text(json.dumps({
        "host": "127.0.0.1", "dbname": "drdrill", "db_superuser": "postgres",
        "nodes": {"pg1": {"port": 61001}, "pg2": {"port": 61002}}}))
    monkeypatch.setenv("DRDRILL_LAB_DIR", str(lab))
    inventory = load_inventory(ROOT / "inventory.example.yml")
    failover = load_runbook(ROOT / "drills/postgres-failover.yml", inventory, strict=True)
    restore = load_runbook(ROOT / "drills/postgres-restore.yml", inventory, strict=True)
    common = "dbname=drdrill user=postgres target_session_attrs=read-write connect_timeout=1"
    assert failover.service is not None and failover.canary is not None
    assert failover.service.probe.options["dsn"] == (
        f"host=127.0.0.1,127.0.0.1 port=61001,61002 {common}")
    assert failover.canary.options["dsn"] == failover.service.probe.options["dsn"]
    assert restore.probes["ledger_served"].options["dsn"] == (
        f"host=127.0.0.1,127.0.0.1,127.0.0.1 port=61001,61002,61011 {common}")


def test_multi_host_dsn_split_into_named_endpoints(tmp_path: Path) -> None:
    from drdrill.engine.readiness import endpoints_of

    inv = tmp_path / "inventory.yml"
    inv.write_text("all:\n  children:\n    primary: {hosts: {db1: {pg_host: 10.0.0.1, "
                   "pg_port: 5432}}}\n    standby: {hosts: {db2: {pg_host: 10.0.0.2, "
                   "pg_port: 5433}}}\n")
    inventory = load_inventory(inv)
    found = endpoints_of("host=10.0.0.1,10.0.0.2,10.0.0.9 port=5432,5433,5442 dbname=bank "
                         "user=probe target_session_attrs=read-write connect_timeout=1",
                         inventory, ["db1", "db2"])
    assert [e.label for e in found] == ["db1 (10.0.0.1:5432)", "db2 (10.0.0.2:5433)",
                                        "10.0.0.9:5442"]
    single = found[1].dsn
    assert "host=10.0.0.2" in single and "port=5433" in single and "dbname=bank" in single
    assert "target_session_attrs=any" in single and "connect_timeout=3" in single
    (one_port,) = endpoints_of("host=db.example port=6432", inventory, [])
    assert (one_port.address, one_port.port, one_port.name) == ("db.example", 6432, "")


def test_a_secret_never_comes_from_the_inventory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The run masks secrets it takes from DRDRILL_SECRET_* / -e / vars only, so a secret's
    text in the inventory must not reach a DSN unmasked."""
    monkeypatch.delenv("DRDRILL_SECRET_DB_PASSWORD", raising=False)
    path, inv = _tree(tmp_path, inventory=INVENTORY.replace(
        "    db_host:", "    db_password: in-the-inventory\n    db_host:"))
    inventory = load_inventory(inv)
    (problem,) = _problems(path, inventory=inventory, strict=True)
    assert "canary.dsn: {{ db_password }} is a secret that is not supplied" in problem
    rb = load_runbook(path, inventory, extra_vars={"db_password": "from-e"}, strict=True)
    assert rb.canary is not None and str(rb.canary.options["dsn"]).endswith("password=from-e")
