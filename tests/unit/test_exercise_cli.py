"""``drdrill exercise keygen|init`` and ``drdrill validate`` on a manifest, as a user runs
them: a real process, exact output, exit status."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import yaml

from drdrill.exercise.manifest import DEFAULT_CHECKS, load_manifest
from drdrill.exercise.runlink import map_checks
from drdrill.runbook.loader import load_runbook

DRDRILL = str(Path(sys.executable).with_name("drdrill"))
ROOT = Path(__file__).resolve().parents[2]


def drdrill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


def init(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    for name in ("bank-a", "bank-b"):
        assert drdrill("exercise", "keygen", name, "-o", "keys", cwd=tmp).returncode == 0
    return drdrill("exercise", "init", "--id", "ex-1", "--scenario", "site lost",
                   "--t0", "2026-03-14T09:00:00Z",
                   "--window", "2026-03-14T08:00:00Z/2026-03-14T18:00:00Z",
                   "--participant", "bank-a=keys/bank-a.pub",
                   "--participant", "bank-b=keys/bank-b.pub", "--rto", "2h", *extra,
                   "-o", "exercise.yml", cwd=tmp)


def test_keygen_writes_a_0600_key_never_printed_and_refuses_to_overwrite(
        tmp_path: Path) -> None:
    done = drdrill("exercise", "keygen", "bank-a", "-o", "keys", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    key = (tmp_path / "keys" / "bank-a.key").read_text()
    assert stat.S_IMODE((tmp_path / "keys" / "bank-a.key").stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key
    body = "".join(key.splitlines()[1:-1])
    assert body not in done.stdout + done.stderr
    pub = (tmp_path / "keys" / "bank-a.pub").read_text().strip()
    assert pub.startswith("ed25519:") and len(pub) == len("ed25519:") + 44
    again = drdrill("exercise", "keygen", "bank-a", "-o", "keys", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "keys" / "bank-a.key").read_text() == key


def test_init_writes_a_manifest_that_validate_accepts(tmp_path: Path) -> None:
    done = init(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: exercise.yml (exercise ex-1, 2 participants)\n"
    manifest = load_manifest(tmp_path / "exercise.yml")
    assert manifest.rto_s == 7200.0 and manifest.rpo_s == 0.0
    assert [p.public_key for p in manifest.participants] == [
        (tmp_path / "keys" / f"{n}.pub").read_text().strip() for n in ("bank-a", "bank-b")]
    assert {c.id for c in manifest.checks} == {"reach_backup_site", "test_transaction",
                                               "verify_data", "rto", "rpo"}
    checked = drdrill("validate", "exercise.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "ok: exercise.yml (exercise ex-1, 2 participants)\n"


def test_validate_reports_every_manifest_problem(tmp_path: Path) -> None:
    assert init(tmp_path).returncode == 0
    doc = yaml.safe_load((tmp_path / "exercise.yml").read_text())
    doc["participants"][1]["public_key"] = "ssh-rsa AAAA"
    doc["participants"].append(dict(doc["participants"][0]))
    doc["window"]["end"] = "2026-03-14T07:00:00Z"
    del doc["scenario"]
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(doc))
    done = drdrill("validate", "bad.yml", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "bad.yml: (top): 'scenario' is a required property" in done.stderr
    assert "bad.yml: participants.1.public_key: 'ssh-rsa AAAA' does not match" in done.stderr
    del doc["participants"][1]
    doc["scenario"] = "x"
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(doc))
    done = drdrill("validate", "bad.yml", cwd=tmp_path)
    assert done.returncode == 2
    assert "window: start must be before end" in done.stderr
    assert "participants: 'bank-a' appears more than once" in done.stderr


def test_init_refuses_a_window_without_a_slash(tmp_path: Path) -> None:
    drdrill("exercise", "keygen", "bank-a", "-o", "keys", cwd=tmp_path)
    done = drdrill("exercise", "init", "--id", "ex-1", "--scenario", "s", "--t0",
                   "2026-03-14T09:00:00Z", "--window", "2026-03-14T08:00:00Z",
                   "--participant", "bank-a=keys/bank-a.pub", cwd=tmp_path)
    assert done.returncode == 2 and "expected START/END" in done.stderr
    assert not (tmp_path / "exercise.yml").exists()


def test_common_checks_map_by_declared_key_then_by_name_and_say_what_is_missing() -> None:
    runbook = load_runbook(ROOT / "drills" / "local-smoke.yml")
    providers, missing = map_checks(DEFAULT_CHECKS, runbook)
    assert providers == {"reach_backup_site": "wait for the service"}
    assert missing == ["test_transaction (complete a test transaction)",
                       "verify_data (verify the data)"]
