"""``drdrill validate`` and ``drdrill schema`` as a user runs them: a real process, exact
output, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from drdrill.runbook.schema import runbook_schema

DRDRILL = str(Path(sys.executable).with_name("drdrill"))

GOOD = """\
name: good
objectives: {rto: 30s, rpo: 0s}
roles: {db: primary}
steps:
  - name: crash
    playbook: crash.yml
    role: db
  - name: settle
    pause: 1s
"""

BAD = """\
name: bad
objectives: {rto: 30s, rpo: 0s}
steps:
  - name: settle
    pause: 1s
    timout: 5s
"""


def drdrill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def tree(tmp_path: Path) -> Path:
    (tmp_path / "drills").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "crash.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "drills" / "good.yml").write_text(GOOD)
    (tmp_path / "drills" / "bad.yml").write_text(BAD)
    return tmp_path


def test_good_runbook_exits_0(tmp_path: Path) -> None:
    result = drdrill("validate", "drills/good.yml", cwd=tree(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: drills/good.yml (2 steps)\n"
    assert result.stderr == ""


def test_bad_runbook_exact_line_and_exit_2(tmp_path: Path) -> None:
    result = drdrill("validate", "drills/bad.yml", cwd=tree(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "drills/bad.yml:6:5: steps[0].timout: unknown key 'timout' — did you mean 'timeout'?\n")


def test_several_files_each_reported(tmp_path: Path) -> None:
    result = drdrill("validate", "drills/good.yml", "drills/bad.yml", "drills/none.yml",
                     cwd=tree(tmp_path))
    assert result.returncode == 2
    assert result.stdout == "ok: drills/good.yml (2 steps)\n"
    assert result.stderr.splitlines() == [
        "drills/bad.yml:6:5: steps[0].timout: unknown key 'timout' — did you mean 'timeout'?",
        "drills/none.yml:1:1: runbook not found — check the path",
    ]
    assert "Traceback" not in result.stderr


def test_inventory_roles_checked(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "inventory.yml").write_text(
        "all:\n  children:\n    standby:\n      hosts: {pg2: {ansible_connection: local}}\n")
    result = drdrill("validate", "drills/good.yml", "-i", "inventory.yml", cwd=root)
    assert result.returncode == 2
    assert result.stderr == (
        "drills/good.yml:7:11: steps[0].role: role 'db' (pattern 'primary') matches no host "
        "in inventory inventory.yml — add that group or host to the inventory, or map the "
        "role to one under roles:\n")
    (root / "inventory.yml").write_text(
        "all:\n  children:\n    primary:\n      hosts: {pg1: {ansible_connection: local}}\n")
    result = drdrill("validate", "drills/good.yml", "-i", "inventory.yml", cwd=root)
    assert (result.returncode, result.stdout) == (0, "ok: drills/good.yml (2 steps)\n")


def test_missing_inventory_is_bad_input(tmp_path: Path) -> None:
    result = drdrill("validate", "drills/good.yml", "-i", "nope.yml", cwd=tree(tmp_path))
    assert result.returncode == 2
    assert "nope.yml: inventory not found" in result.stderr


def test_no_runbook_argument_is_a_usage_error(tmp_path: Path) -> None:
    result = drdrill("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_schema_command_prints_the_schema(tmp_path: Path) -> None:
    result = drdrill("schema", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == runbook_schema()
