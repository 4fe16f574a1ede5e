"""The shipped JSON Schema against examples: every file under valid/ loads, every file under
invalid/ fails with exactly the problems its ``# expect: LINE:COL: fragment`` header lists."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from drdrill.errors import ValidationFailed
from drdrill.runbook.durations import DURATION_PATTERN
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.schema import runbook_schema, schema_text
from drdrill.runbook.source import read_source

HERE = Path(__file__).parent
VALID = sorted((HERE / "valid").glob("*.yml"))
INVALID = sorted((HERE / "invalid").glob("*.yml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")
PLAYBOOKS = ("crash.yml", "promote.yml", "failback.yml", "sub/promote.yml")


def expectations(path: Path) -> list[tuple[int, int, str]]:
    """The ``# expect:`` header lines of an invalid example, in order."""
    found = []
    for line in path.read_text("utf-8").splitlines():
        match = EXPECT.match(line)
        if not match:
            break
        found.append((int(match.group(1)), int(match.group(2)), match.group(3)))
    return found


def install(example: Path, tmp_path: Path) -> Path:
    """Copy ``example`` to tmp/drills/ beside a tmp/playbooks/ holding the playbooks the
    examples use, plus ``linked.yml``: a symlink to a file outside playbooks/."""
    playbooks = tmp_path / "playbooks"
    for name in PLAYBOOKS:
        (playbooks / name).parent.mkdir(parents=True, exist_ok=True)
        (playbooks / name).write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "outside.yml").write_text("- hosts: all\n  tasks: []\n")
    (playbooks / "linked.yml").symlink_to(tmp_path / "outside.yml")
    (tmp_path / "drills").mkdir()
    target = tmp_path / "drills" / example.name
    shutil.copyfile(example, target)
    return target


def test_enough_examples() -> None:
    assert len(VALID) >= 4
    assert len(INVALID) >= 12


def test_schema_is_valid_draft_2020_12() -> None:
    schema = runbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert json.loads(schema_text()) == schema


def test_schema_duration_pattern_matches_parser() -> None:
    assert runbook_schema()["$defs"]["duration"]["pattern"] == DURATION_PATTERN


def test_every_property_has_a_description() -> None:
    """Editors show these as help; a property without one is a gap."""
    missing: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "description" not in sub and name != "type":
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(runbook_schema(), "")
    assert missing == []


@pytest.mark.parametrize("example", VALID, ids=lambda p: p.name)
def test_valid_example_loads(example: Path, tmp_path: Path) -> None:
    runbook = load_runbook(install(example, tmp_path))
    assert runbook.steps
    data = read_source(example).data  # YAML 1.2-like: dates stay strings, as in editors
    # plain jsonschema (what an editor runs) agrees with the loader
    assert list(jsonschema.Draft202012Validator(runbook_schema()).iter_errors(data)) == []


@pytest.mark.parametrize("example", INVALID, ids=lambda p: p.name)
def test_invalid_example_fails_exactly_as_expected(example: Path, tmp_path: Path) -> None:
    expected = expectations(example)
    assert expected, f"{example.name} has no '# expect: LINE:COL: fragment' header"
    target = install(example, tmp_path)
    with pytest.raises(ValidationFailed) as failed:
        load_runbook(target)
    problems = failed.value.problems
    assert len(problems) == len(expected), "\n".join(problems)
    for line, col, fragment in expected:
        prefix = f"{target}:{line}:{col}: "
        hits = [p for p in problems if p.startswith(prefix) and fragment in p[len(prefix):]]
        assert hits, f"no problem {prefix}...{fragment!r} in:\n" + "\n".join(problems)
