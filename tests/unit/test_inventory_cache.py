"""validate's inventory cache replays Ansible's own parse: for every shipped and test-shaped
inventory the replay equals a fresh parse by Ansible, a change to anything the parse read
(the file, the lab's lab.env.json, an environment variable a lookup reads) is seen, and
inventories whose parse the cache cannot key (other lookups, secrets from the environment,
vault, scripts, group_vars) are never stored."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from drdrill.executors import inventory as inventory_mod
from drdrill.executors import inventory_cache
from drdrill.executors.inventory import Inventory, load_inventory

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(ROOT.glob("inventory*.yml"))

# the shapes the tests write: conftest.local_inventory, tests/harness netns/ssh inventories
# (connection vars per host, groups with null members), endpoints' templated all var, INI
# with host ranges, children and group vars
LOCAL = f"""\
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {sys.executable}
  children:
    primary: {{hosts: {{pg1: {{}}}}}}
    standby: {{hosts: {{pg2: {{}}}}}}
"""
NETNS = """\
all:
  hosts:
    db1: {ansible_host: 10.200.0.2, ansible_user: root, ansible_port: 22,
          ansible_ssh_common_args: "-o StrictHostKeyChecking=yes", pg_port: 5432}
    db2: {ansible_host: 10.200.0.3, ansible_user: root, ansible_port: 22}
  children:
    primary: {hosts: {db1: null}}
    standby: {hosts: {db2: null}}
"""
TEMPLATED = """\
all:
  vars:
    db_host: 10.0.0.7
    port: 5432
    service_dsn: "host={{ db_host }} port={{ port | int + 1 }} dbname=bank"
    nodes: {a: [1, 2], b: {c: true}}
  children:
    primary: {hosts: {db1: {service_dsn: "host=only-for-db1"}}}
"""
INI = """\
[primary]
db[1:2].example.com ansible_connection=local

[standby]
db3.example.com

[postgres:children]
primary
standby

[postgres:vars]
pg_port=5432

[all:vars]
service_dsn=host=db1.example.com port=5432
"""
LAB_ENV = {"bin_dir": "/usr/lib/postgresql/15/bin", "os_user": "postgres",
           "run_as": ["runuser", "-u", "postgres", "--"], "host": "127.0.0.1",
           "nodes": {"pg1": {"port": 58401, "data": "/x/pg1"},
                     "pg2": {"port": 58402, "data": "/x/pg2"}},
           "log_dir": "/x/log", "db_superuser": "postgres", "dbname": "drill",
           "archive_dir": "/x/archive", "backup_dir": "/x/backup",
           "service": {"url": "http://127.0.0.1:58410", "ctl": ["ctl"],
                       "sites": {"site-a": {"url": "http://a"}, "site-b": {"url": "http://b"}},
                       "versions": {"current": 1, "next": 2}}}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own cache dir and lab dir; run from tmp_path (the cache keys the working dir)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DRDRILL_CACHE_DIR", str(cache))
    monkeypatch.setenv("DRDRILL_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.chdir(tmp_path)
    return cache


def _facts(inv: Inventory) -> dict[str, Any]:
    """Everything validate reads. Ansible itself orders the hosts of a group that spans
    several children differently from one parse to the next (set order: ``all`` of
    inventory.example.yml, even in one process), so members compare as sets here; the replay
    keeps the order of the parse it stored (``_exact``)."""
    return {"hosts": set(inv.hosts), "groups": {g: set(m) for g, m in inv.groups.items()},
            "all_vars": dict(inv.all_vars), "unrendered": dict(inv.unrendered),
            "sha256": inv.sha256, "all_vars_order": list(inv.all_vars),
            "groups_order": list(inv.groups), "host_count": len(inv.hosts)}


def _exact(inv: Inventory) -> dict[str, Any]:
    return {**_facts(inv), "hosts": inv.hosts, "groups": dict(inv.groups)}


def _replayed(path: Path, monkeypatch: pytest.MonkeyPatch) -> Inventory:
    """Load with the cache while Ansible's parser is unavailable: proves a replay."""
    with monkeypatch.context() as patch:
        patch.setattr(inventory_mod, "_parse", _no_ansible)
        return load_inventory(path, cache=True)


def _no_ansible(path: Path) -> Any:
    raise AssertionError(f"{path}: parsed by Ansible, not replayed")


def _check_replay_equals_ansible(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = load_inventory(path)  # no cache: Ansible
    stored = load_inventory(path, cache=True)  # Ansible, then stored
    replay = _replayed(path, monkeypatch)
    assert _facts(stored) == _facts(fresh)
    assert _facts(replay) == _facts(fresh)
    assert _exact(replay) == _exact(stored)
    # host variables are Ansible's in every case (rendered on first use)
    assert {h: dict(replay.vars_of(h)) for h in replay.hosts} == \
        {h: dict(fresh.vars_of(h)) for h in fresh.hosts}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
@pytest.mark.parametrize("lab", ["no-lab", "lab-up"])
def test_shipped_inventory_replay_equals_ansible(path: Path, lab: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if lab == "lab-up":
        (tmp_path / "lab").mkdir()
        (tmp_path / "lab" / "lab.env.json").write_text(json.dumps(LAB_ENV))
    _check_replay_equals_ansible(path, monkeypatch)
    if path.name == "inventory.example.yml":  # the case validate is timed on
        inv = load_inventory(path, cache=True)
        assert ("service_dsn" in inv.unrendered) == (lab == "no-lab")
        if lab == "lab-up":
            assert "port=58401,58402" in inv.all_vars["service_dsn"]


@pytest.mark.parametrize("name,text", [("local.yml", LOCAL), ("netns.yml", NETNS),
                                       ("templated.yml", TEMPLATED), ("hosts.ini", INI)])
def test_test_inventory_replay_equals_ansible(name: str, text: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / name
    path.write_text(text)
    _check_replay_equals_ansible(path, monkeypatch)
    if name == "hosts.ini":
        inv = load_inventory(path, cache=True)
        assert inv.resolve("postgres") == ["db1.example.com", "db2.example.com",
                                           "db3.example.com"]
    if name == "templated.yml":
        assert load_inventory(path, cache=True).all_vars["service_dsn"] == \
            "host=10.0.0.7 port=5433 dbname=bank"


def test_a_change_to_what_the_parse_read_is_seen(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab comes up (lab.env.json appears), changes ports, moves: each time the cached
    load equals Ansible's fresh parse, never the stale entry."""
    path = ROOT / "inventory.example.yml"
    before = load_inventory(path, cache=True)
    assert "service_dsn" in before.unrendered
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.env.json").write_text(json.dumps(LAB_ENV))
    up = load_inventory(path, cache=True)
    assert "service_dsn" not in up.unrendered and _facts(up) == _facts(load_inventory(path))
    moved = {**LAB_ENV, "nodes": {"pg1": {"port": 58461, "data": "/y/pg1"},
                                  "pg2": {"port": 58462, "data": "/y/pg2"}}}
    (lab / "lab.env.json").write_text(json.dumps(moved))
    changed = load_inventory(path, cache=True)
    assert "port=58461,58462" in changed.all_vars["service_dsn"]
    other = tmp_path / "other-lab"
    other.mkdir()
    (other / "lab.env.json").write_text(json.dumps(LAB_ENV))
    monkeypatch.setenv("DRDRILL_LAB_DIR", str(other))
    elsewhere = load_inventory(path, cache=True)
    assert elsewhere.all_vars["lab_dir"] == str(other)
    assert "port=58401,58402" in elsewhere.all_vars["service_dsn"]


def test_an_edited_inventory_is_parsed_again(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(LOCAL)
    assert load_inventory(path, cache=True).hosts == ("pg1", "pg2")
    path.write_text(LOCAL.replace("pg2", "pg9"))
    assert load_inventory(path, cache=True).hosts == ("pg1", "pg9")
    assert _replayed(path, monkeypatch).hosts == ("pg1", "pg9")


def test_entries_are_private_files(tmp_path: Path, isolated: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(LOCAL)
    load_inventory(path, cache=True)
    entries = list(isolated.glob("inventory-*.json"))
    assert len(entries) == 1
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o700
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600


REFUSED = {
    "secret-from-env": "all:\n  vars:\n    pw: \"{{ lookup('env', 'DB_PASSWORD') }}\"\n"
                       "  hosts: {h1: {}}\n",
    "env-default-arg": "all:\n  vars:\n    d: \"{{ lookup('env', 'HOME', default='x') }}\"\n"
                       "  hosts: {h1: {}}\n",
    "pipe-lookup": "all:\n  vars:\n    v: \"{{ lookup('pipe', 'id -u') }}\"\n  hosts: {h1: {}}\n",
    "query": "all:\n  vars:\n    v: \"{{ query('ansible.builtin.env', 'HOME') }}\"\n"
             "  hosts: {h1: {}}\n",
    "expanduser": "all:\n  vars:\n    v: \"{{ '~/x' | expanduser }}\"\n  hosts: {h1: {}}\n",
    "vault": "all:\n  vars:\n    pw: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      6162\n"
             "  hosts: {h1: {}}\n",
    "unsafe": "all:\n  vars:\n    v: !unsafe '{{ x }}'\n  hosts: {h1: {}}\n",
    "plugin": "plugin: ansible.builtin.constructed\nstrict: false\n",
    "now": "all:\n  vars:\n    t: \"{{ now() }}\"\n  hosts: {h1: {}}\n",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_inventories_the_key_cannot_capture_are_never_stored(case: str, tmp_path: Path,
                                                             isolated: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(REFUSED[case])
    assert inventory_cache.slot_for(path, path.read_bytes()) is None
    assert not isolated.exists()


def test_scripts_and_vars_dirs_are_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(LOCAL)
    assert inventory_cache.slot_for(path, path.read_bytes()) is not None
    (tmp_path / "group_vars").mkdir()
    assert inventory_cache.slot_for(path, path.read_bytes()) is None
    (tmp_path / "group_vars").rmdir()
    path.chmod(0o755)
    assert inventory_cache.slot_for(path, path.read_bytes()) is None


def test_an_empty_cache_dir_setting_turns_the_cache_off(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRDRILL_CACHE_DIR", "")
    path = tmp_path / "inventory.yml"
    path.write_text(LOCAL)
    assert inventory_cache.slot_for(path, path.read_bytes()) is None
    load_inventory(path, cache=True)
    assert os.listdir(tmp_path) == ["inventory.yml"]
