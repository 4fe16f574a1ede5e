"""``command:`` steps in the runbook: validation with located messages, the model, and the
plain ``{{ name }}`` substitution of argv elements (never Jinja, never a shell)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.runbook.commands import UnboundName, render_argv
from drdrill.runbook.loader import load_runbook, validate_runbook
from drdrill.runbook.model import StepKind

HEAD = "name: c\nobjectives: {rto: 30s, rpo: 0s}\nroles: {db: primary}\nsteps:\n"


def _write(tmp_path: Path, steps: str) -> Path:
    (tmp_path / "playbooks").mkdir(exist_ok=True)
    path = tmp_path / "c.yml"
    path.write_text(HEAD + steps)
    return path


def test_a_command_step_is_built_into_the_model(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - name: promote\n"
                            "    command: ['{{ pg_bin }}/psql', -c, 'select 1']\n"
                            "    role: db\n    fact: last_replay_ts\n    timeout: 5s\n"
                            "  - name: here\n    command: [/bin/true]\n    local: true\n")
    promote, here = load_runbook(path).steps
    assert promote.kind is StepKind.COMMAND and here.kind is StepKind.COMMAND
    assert promote.command == ("{{ pg_bin }}/psql", "-c", "select 1")
    assert promote.fact == "last_replay_ts" and promote.timeout_s == 5.0
    assert not promote.local and promote.role == "db"
    assert here.local and here.role is None and here.command == ("/bin/true",)


@pytest.mark.parametrize(("steps", "expected"), [
    ("  - name: x\n    command: [/bin/true]\n",
     "c.yml:6:14: steps[0].command: a command step runs on role: hosts or locally — add "
     "role: ROLE, or local: true to run it on this machine"),
    ("  - name: x\n    command: [/bin/true]\n    role: db\n    local: true\n",
     "c.yml:8:12: steps[0].local: local: true runs on this machine, role: on that role's "
     "hosts — keep one"),
    ("  - name: x\n    command: [echo, '{{ a | upper }}']\n    role: db\n",
     "c.yml:6:21: steps[0].command[1]: '{{ a | upper }}' is not a variable name — only "
     "{{ name }} is substituted in a command (letters, digits, _), never an expression; "
     "compute the value in the inventory"),
    ("  - name: x\n    pause: 1s\n    local: true\n",
     "c.yml:7:5: steps[0].local: local: belongs to command steps — add command: [argv...] "
     "or drop local:"),
    ("  - name: x\n    command: 'rm -rf /'\n    role: db\n",
     "c.yml:6:14: steps[0].command: expected a list, got a string 'rm -rf /'"),
    ("  - name: x\n    command: [/bin/true]\n    playbook: p.yml\n    role: db\n",
     "the step has both playbook and command"),
])
def test_bad_command_steps_are_located(tmp_path: Path, steps: str, expected: str) -> None:
    problems = validate_runbook(_write(tmp_path, steps))
    assert any(expected in p for p in problems), problems


def test_render_substitutes_plain_names_and_splices_lists() -> None:
    values = {"pg_bin": "/usr/bin", "run_as": ["runuser", "-u", "pg", "--"], "none": [],
              "port": 5432, "evil": "$(reboot); rm -rf /"}
    argv = ["{{ run_as }}", "{{ none }}", "{{pg_bin}}/pg_ctl", "-p", "{{ port }}", "{{ evil }}"]
    assert render_argv(argv, values) == ["runuser", "-u", "pg", "--", "/usr/bin/pg_ctl", "-p",
                                         "5432", "$(reboot); rm -rf /"]


@pytest.mark.parametrize(("argv", "values", "why"), [
    (["{{ missing }}"], {}, "{{ missing }} is not defined for this host"),
    (["x{{ run_as }}"], {"run_as": ["a"]}, "only a whole argument may be a list"),
    (["{{ raw }}"], {"raw": "{{ lab_env.port }}"}, "itself an unrendered template"),
])
def test_render_refuses_what_it_cannot_substitute(argv: list[str], values: dict[str, object],
                                                  why: str) -> None:
    with pytest.raises(UnboundName, match=why.replace("{", r"\{").replace("}", r"\}")):
        render_argv(argv, values)
