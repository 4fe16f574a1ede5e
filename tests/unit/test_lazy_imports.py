"""Start-up stays cheap (issue 11.4): ``drdrill --help`` and ``drdrill validate`` run as a
user runs them (the installed console script, a real process) and must not load the heavy
libraries they do not use. The process dumps ``sys.modules`` at exit, so re-adding a
top-level ``import paramiko`` (or a command module that pulls in the engine) anywhere on
these paths fails here."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import pytest

from drdrill.commands import main as cli_main
from drdrill.executors.inventory import _HostVars

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(Path(sys.executable).with_name("drdrill"))
DRILL = "drills/postgres-failover.yml"
INVENTORY = "inventory.example.yml"

# never needed to print help or to check a runbook
ALWAYS_HEAVY = ("paramiko", "psycopg", "psycopg2", "ansible_runner", "rich", "pexpect")


# runs the installed console script itself, then prints every module loaded on the way
DUMP = """\
import atexit, json, runpy, sys
atexit.register(lambda: print("MODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def imported(args: list[str], env: Mapping[str, str] | None = None
             ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``drdrill ARGS`` in a fresh interpreter; the names of every module it loaded."""
    done = subprocess.run([sys.executable, "-c", DUMP, DRDRILL, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env=None if env is None else dict(env))
    dumps = [line for line in done.stderr.splitlines() if line.startswith("MODULES=")]
    assert len(dumps) == 1, done.stderr[-2000:]
    return done, set(json.loads(dumps[0].removeprefix("MODULES=")))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


def lab_env(tmp_path: Path) -> dict[str, str]:
    """inventory.example.yml reads $DRDRILL_LAB_DIR/lab.env.json: point it at an empty dir
    (no lab), as validate on a fresh checkout sees it."""
    return {**os.environ, "DRDRILL_LAB_DIR": str(tmp_path / "lab"),
            "DRDRILL_CACHE_DIR": str(tmp_path / "cache")}  # starts empty: Ansible parses


def test_help_loads_no_command_module_and_no_heavy_library() -> None:
    done, modules = imported(["--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Commands:" in done.stdout and "validate" in done.stdout
    assert "drdrill.commands.main" in modules  # the parse saw the real process's imports
    assert loaded(modules, (*ALWAYS_HEAVY, "ansible", "jsonschema", "yaml", "jinja2")) == []
    command_modules = sorted(m for m in modules if m.endswith("_cmd"))
    assert command_modules == []


def test_validate_without_inventory_loads_no_ansible(tmp_path: Path) -> None:
    done, modules = imported(["validate", DRILL], env=lab_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"ok: {DRILL} (")
    assert loaded(modules, (*ALWAYS_HEAVY, "ansible", "jinja2", "cryptography")) == []
    assert "jsonschema" in modules  # it did check the schema


def test_validate_with_inventory_parses_it_without_the_engine(tmp_path: Path) -> None:
    done, modules = imported(["validate", DRILL, "-i", INVENTORY], env=lab_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"ok: {DRILL} (")
    assert loaded(modules, ALWAYS_HEAVY) == []
    # Ansible's own inventory parser, but neither its executor nor its per-host variable
    # manager: validate needs host names and the all vars, not every host's variables
    assert "ansible.inventory.manager" in modules
    assert [m for m in modules if m.startswith(("ansible.executor", "ansible.playbook"))
            or m == "ansible.vars.manager"] == []


def test_validate_again_replays_the_inventory_without_ansible(tmp_path: Path) -> None:
    """The second validate of an unchanged inventory replays Ansible's stored parse
    (executors/inventory_cache.py): same output, and Ansible and Jinja are never imported."""
    env = lab_env(tmp_path)
    first, first_modules = imported(["validate", DRILL, "-i", INVENTORY], env=env)
    again, modules = imported(["validate", DRILL, "-i", INVENTORY], env=env)
    assert "ansible.inventory.manager" in first_modules
    assert again.returncode == first.returncode == 0, again.stderr[-2000:]
    assert (again.stdout, again.stderr.split("MODULES=")[0]) == \
        (first.stdout, first.stderr.split("MODULES=")[0])
    assert loaded(modules, (*ALWAYS_HEAVY, "ansible", "jinja2")) == []


def test_every_command_runs_through_the_lazy_group() -> None:
    """A lazily loaded subcommand still parses its own options (lab is a group itself)."""
    done, modules = imported(["lab", "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "up" in done.stdout and "drdrill.commands.lab_cmd" in modules
    assert "drdrill.commands.run_cmd" not in modules
    unknown = subprocess.run([DRDRILL, "no-such-command"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert unknown.returncode == 2
    assert "No such command 'no-such-command'" in unknown.stderr


@pytest.mark.parametrize("name", cli_main._COMMANDS)
def test_help_summary_is_the_commands_own(name: str) -> None:
    """--help lists commands from summaries without importing them: each summary must stay
    the command's own short help (edit main._SUMMARIES when a docstring changes)."""
    command = importlib.import_module(f"drdrill.commands.{name}_cmd").command
    summary = cli_main._SUMMARIES[name]
    stand_in = click.Command(name, help=summary)
    for limit in (45, 60, 10_000):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_every_command_module_is_listed() -> None:
    on_disk = sorted(p.stem.removesuffix("_cmd") for p in
                     (ROOT / "cli" / "drdrill" / "commands").glob("*_cmd.py"))
    assert sorted(cli_main._COMMANDS) == on_disk


class _Counting:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    def __call__(self) -> dict[str, Mapping[str, Any]]:
        self.calls += 1
        time.sleep(self.delay)  # a slow render widens any race between readers
        return {"pg1": {"pg_port": 5432}, "pg2": {"pg_port": 5433}}


def test_host_vars_render_once_on_first_use_and_names_need_no_render() -> None:
    render = _Counting()
    host_vars = _HostVars(("pg1", "pg2"), render)
    assert "pg1" in host_vars and "nope" not in host_vars
    assert list(host_vars) == ["pg1", "pg2"] and len(host_vars) == 2
    assert render.calls == 0
    assert host_vars.get("nope") is None and render.calls == 0
    assert host_vars["pg2"] == {"pg_port": 5433}
    assert dict(host_vars) == {"pg1": {"pg_port": 5432}, "pg2": {"pg_port": 5433}}
    assert render.calls == 1


def test_host_vars_render_once_under_concurrent_readers() -> None:
    render = _Counting(delay=0.05)
    host_vars = _HostVars(("pg1", "pg2"), render)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(host_vars["pg1"]["pg_port"]))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [5432] * 8 and render.calls == 1
