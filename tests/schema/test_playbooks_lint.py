"""The shipped playbooks are what adopters copy into repositories whose CI runs ansible-lint
(issue 15): ansible-lint (production profile, offline, the project's .ansible-lint) reports
nothing on playbooks/, and every playbook passes ``ansible-playbook --syntax-check`` on its
own (no inventory, no extra vars). The whole directory is checked, so a new playbook is
covered the day it lands. Conventions: docs/playbooks.md."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
CONFIG = ROOT / ".ansible-lint"
BIN = Path(sys.executable).parent
# ansible-lint's closing line, e.g. "Passed: 0 failure(s), 0 warning(s) in 27 files processed
# of 27 encountered."
SUMMARY = re.compile(r"(\d+) failure\(s\), (\d+) warning\(s\) in (\d+) files processed")


def _env(tmp_path: Path) -> dict[str, str]:
    """The venv's tools first on PATH, no colour, Ansible's scratch files under tmp_path."""
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_HOME": str(tmp_path)}
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("ANSIBLE_INVENTORY", None)
    return env


def _playbook_files() -> list[Path]:
    """Top-level playbooks (tasks/ and vars/ hold included files, not playbooks)."""
    return sorted([*PLAYBOOKS.glob("*.yml"), *PLAYBOOKS.glob("*.yaml")])


def _syntax_errors(files: list[Path], env: dict[str, str]) -> dict[str, str]:
    """{file name: ansible-playbook's error} for each file that fails --syntax-check. One
    run checks them all (each play is loaded on its own, with no inventory and no extra
    vars); it stops at the first failure, so only then is each file checked alone, to list
    every failing one."""
    def check(batch: list[Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check",
                               *map(str, batch)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)

    if check(files).returncode == 0:
        return {}
    errors = {}
    for path in files:
        done = check([path])
        if done.returncode != 0:
            errors[path.name] = (done.stderr.strip() or done.stdout.strip())[-600:]
    return errors


# ~25 s on an idle 2-core machine; minutes when many test runs share it
@pytest.mark.timeout(600)
def test_ansible_lint_reports_nothing_on_playbooks(tmp_path: Path) -> None:
    lint = BIN / "ansible-lint"
    assert lint.exists(), "ansible-lint is missing: pip install -e '.[dev]' (pinned there)"
    done = subprocess.run([str(lint), "--offline", "--nocolor", "-f", "pep8", "-c",
                           str(CONFIG), "playbooks/"], cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=570,
                          stdin=subprocess.DEVNULL)
    findings = done.stdout.strip()
    assert done.returncode == 0 and not findings, (
        f"ansible-lint --offline playbooks/ (exit {done.returncode}); fix these or see "
        f"docs/playbooks.md:\n{findings}\n{done.stderr[-2000:]}")
    summary = SUMMARY.search(done.stderr)
    assert summary is not None, done.stderr[-2000:]
    failures, warnings, processed = map(int, summary.groups())
    assert (failures, warnings) == (0, 0), summary.group(0)
    # it really looked at them: every YAML file under playbooks/ (an exclude_paths or
    # project-dir mistake makes ansible-lint pass on "0 files processed")
    assert processed >= len(list(PLAYBOOKS.rglob("*.yml"))), summary.group(0)


def test_every_playbook_passes_syntax_check_on_its_own(tmp_path: Path) -> None:
    files = _playbook_files()
    assert len(files) >= 15, files
    assert _syntax_errors(files, _env(tmp_path)) == {}


def test_syntax_check_catches_a_playbook_without_a_hosts_default(tmp_path: Path) -> None:
    """The check above can fail: a bare ``hosts: "{{ drdrill_hosts }}"`` (issue 15's
    syntax-check finding) fails, the same play with the safe default passes, and both are
    reported by name when checked together."""
    bare = tmp_path / "bare.yml"
    bare.write_text('- name: Bare\n  hosts: "{{ drdrill_hosts }}"\n  gather_facts: false\n'
                    '  tasks: []\n')
    safe = tmp_path / "safe.yml"
    safe.write_text(bare.read_text().replace("drdrill_hosts }}",
                                             "drdrill_hosts | default('drdrill_no_hosts') }}"))
    errors = _syntax_errors([safe, bare], _env(tmp_path))
    assert list(errors) == ["bare.yml"]
    assert "drdrill_hosts" in errors["bare.yml"]


def test_lint_config_is_production_offline_and_skips_nothing() -> None:
    """A rule is skipped per task (``# noqa``, with a reason), never for the whole project."""
    config = yaml.safe_load(CONFIG.read_text("utf-8"))
    assert config["profile"] == "production"
    assert config["offline"] is True and config["strict"] is True
    assert not config.get("skip_list")
    assert not any(str(p).rstrip("/") in ("playbooks", ".", "") for p in config["exclude_paths"])


def test_ansible_lint_is_pinned_in_the_dev_extra() -> None:
    """CI (.ci/run) installs the dev extra: the pin is what makes its lint reproducible."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    assert re.search(r'^dev = \[.*"ansible-lint==\d+\.\d+\.\d+"', text, re.MULTILINE), text
