"""The run's inputs snapshot (runbook/): the WHOLE playbook directory as run (vars files,
task files, anything beside the named playbooks), the runbook, the inventory and its
group_vars; a per-file manifest journaled (``inputs_snapshot``) before the first step,
inside the hash chain; `drdrill verify` and bundle verification name a changed file."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from crashkit import DRILLS, FIXTURES, cli

from drdrill.engine.runner import RunOptions, run_drill
from drdrill.journal.verify import manifest_digest
from drdrill.report.bundle import SUMS, build_bundle, verify_bundle

pytestmark = pytest.mark.integration
VARS_FILE = "runbook/playbooks/vars/site.yml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flag-failover.yml run from a tree whose playbooks/ has more than the named files."""
    base = tmp_path_factory.mktemp("snapshot")
    shutil.copytree(FIXTURES / "playbooks", base / "playbooks")
    (base / "playbooks" / "vars").mkdir()
    (base / "playbooks" / "vars" / "site.yml").write_text("site_name: lab\n")
    (base / "playbooks" / "tasks").mkdir()
    (base / "playbooks" / "tasks" / "noop.yml").write_text("- ansible.builtin.debug: {}\n")
    (base / "drills").mkdir()
    shutil.copy(DRILLS / "flag-failover.yml", base / "drills")
    (base / "inv").mkdir()
    inventory = base / "inv" / "inventory.yml"
    inventory.write_text(
        "all:\n  vars:\n    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "  children:\n    primary: {hosts: {pg1: {}}}\n    standby: {hosts: {pg2: {}}}\n")
    (base / "inv" / "group_vars").mkdir()
    (base / "inv" / "group_vars" / "all.yml").write_text("drill_site: lab\n")
    result = run_drill(RunOptions(base / "drills" / "flag-failover.yml", inventory, yes=True,
                                  runs_dir=base / "runs"))
    assert result.status == "passed", result.record.get("reason")
    return result.run_dir


def _lines(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]


def test_snapshot_is_the_whole_playbook_dir_and_its_manifest_is_journaled(
        finished_run: Path) -> None:
    source = finished_run.parent.parent / "playbooks"
    expected = {f"runbook/playbooks/{p.relative_to(source).as_posix()}"
                for p in source.rglob("*") if p.is_file()}
    expected |= {"runbook/flag-failover.yml", "runbook/inventory.yml",
                 "runbook/group_vars/all.yml"}
    on_disk = {p.relative_to(finished_run).as_posix()
               for p in (finished_run / "runbook").rglob("*") if p.is_file()}
    assert on_disk == expected
    lines = _lines(finished_run)
    assert [ln["type"] for ln in lines[:2]] == ["run_started", "inputs_snapshot"]
    data = lines[1]["data"]
    assert isinstance(data, dict)
    files = data["files"]
    assert set(files) == expected
    for name, digest in files.items():
        assert hashlib.sha256((finished_run / name).read_bytes()).hexdigest() == digest
    assert data["digest"] == manifest_digest(files)
    assert cli("verify", str(finished_run), cwd=finished_run.parent).returncode == 0


def test_a_changed_vars_file_in_the_snapshot_is_named(finished_run: Path,
                                                      tmp_path: Path) -> None:
    copy = tmp_path / finished_run.name
    shutil.copytree(finished_run, copy)
    with open(copy / VARS_FILE, "a") as fh:
        fh.write("site_name: elsewhere\n")
    (copy / "runbook" / "playbooks" / "extra.yml").write_text("- hosts: all\n")
    done = cli("verify", str(copy), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{copy / VARS_FILE}: modified since the run (its SHA-256 differs from the " \
           "inputs snapshot journaled on line 2)" in done.stderr, done.stderr
    assert f"{copy / 'runbook/playbooks/extra.yml'}: added after the run" in done.stderr


def test_a_changed_snapshot_file_in_a_bundle_is_named(finished_run: Path,
                                                      tmp_path: Path) -> None:
    """Even with SHA256SUMS recomputed to match, the journaled manifest catches it."""
    bundle = build_bundle(finished_run, tmp_path / "evidence.tar.gz")
    assert verify_bundle(bundle) == []
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                   for m in tar.getmembers() if m.isfile()}
    top = finished_run.name
    altered = members[f"{top}/{VARS_FILE}"] + b"site_name: elsewhere\n"
    members[f"{top}/{VARS_FILE}"] = altered
    sums = members[f"{top}/{SUMS}"].decode().splitlines()
    members[f"{top}/{SUMS}"] = "".join(
        f"{hashlib.sha256(altered).hexdigest()}  {VARS_FILE}\n" if line.endswith(
            f"  {VARS_FILE}") else f"{line}\n" for line in sums).encode()
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    problems = verify_bundle(forged)
    assert f"{VARS_FILE}: modified since the run (its SHA-256 differs from the inputs " \
           "snapshot journaled on line 2)" in problems, problems
    done = cli("verify", str(forged), cwd=tmp_path)
    assert done.returncode == 1 and VARS_FILE in done.stderr, done.stderr
