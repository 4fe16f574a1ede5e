"""Evidence bundle: built, unpacked, verified (also by sha256sum), tampering detected."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import fixtures.make_fixture_run as fx
from drdrill.report.bundle import NOTES, SUMS, build_bundle, verify_bundle

RUN_ID = "20260314T090000Z-postgres-failover"


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    run_dir = fx.make_run(tmp_path / "runs")
    return build_bundle(run_dir, tmp_path / "out" / "evidence.tar.gz", None)


def _names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name for m in tar.getmembers()}


def test_bundle_contents_and_verify_ok(bundle: Path, tmp_path: Path) -> None:
    names = _names(bundle)
    for rel in ("journal.jsonl", "record.json", "report.html", "report.md", "junit.xml",
                SUMS, "runbook/postgres-failover.yml", "runbook/playbooks/promote.yml",
                "steps/5-promote-standby/stdout"):
        assert f"{RUN_ID}/{rel}" in names, rel
    assert verify_bundle(bundle) == []
    unpacked = tmp_path / "unpacked"
    with tarfile.open(bundle) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4; 3.11.2 has no filters
            tar.extractall(unpacked, filter="data")
        else:
            tar.extractall(unpacked)  # the bundle was just built by this test
    top = unpacked / RUN_ID
    listed = {line.split("  ", 1)[1] for line in (top / SUMS).read_text().splitlines()}
    on_disk = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    assert listed == on_disk - {SUMS}
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "--check", "--quiet", SUMS], cwd=top,
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy a bundle, replacing (bytes) or dropping (None) members by name under the top."""
    with tarfile.open(src) as tar_in, tarfile.open(dst, "w:gz") as tar_out:
        for member in tar_in.getmembers():
            rel = member.name.split("/", 1)[1]
            content = tar_in.extractfile(member)
            data = content.read() if content else b""
            if rel in change:
                if change[rel] is None:
                    continue
                data = change[rel] or b""
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            tar_out.addfile(info, io.BytesIO(data))


def _member(path: Path, rel: str) -> bytes:
    with tarfile.open(path) as tar:
        extracted = tar.extractfile(f"{RUN_ID}/{rel}")
        assert extracted
        return extracted.read()


def test_one_altered_byte_is_detected_and_named(bundle: Path, tmp_path: Path) -> None:
    original = _member(bundle, "steps/3-crash-primary/stdout")
    altered = bytearray(original)
    altered[0] ^= 0x01
    tampered = tmp_path / "tampered.tar.gz"
    _rewrite(bundle, tampered, {"steps/3-crash-primary/stdout": bytes(altered)})
    assert verify_bundle(tampered) == ["checksum mismatch: steps/3-crash-primary/stdout"]


def test_journal_forged_with_sums_recomputed_is_still_caught(bundle: Path,
                                                              tmp_path: Path) -> None:
    journal = _member(bundle, "journal.jsonl")
    lines = journal.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if b'"status":"failed"' in line)
    lines[index] = lines[index].replace(b'"status":"failed"', b'"status":"ok"', 1)
    forged = b"".join(lines)
    sums = _member(bundle, SUMS).decode()
    old = hashlib.sha256(journal).hexdigest()
    new = hashlib.sha256(forged).hexdigest()
    tampered = tmp_path / "forged.tar.gz"
    _rewrite(bundle, tampered, {"journal.jsonl": forged, SUMS: sums.replace(old, new).encode()})
    problems = verify_bundle(tampered)
    # the same check as `drdrill verify RUN` (journal/verify.py): it names the altered line
    assert problems == [f"journal.jsonl:{index + 1}: line altered: its SHA-256 no longer "
                        f"matches the prev recorded on line {index + 2}"], problems


def test_missing_and_extra_files_are_reported(bundle: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "missing.tar.gz"
    _rewrite(bundle, tampered, {"report.md": None})
    assert verify_bundle(tampered) == ["missing: report.md"]
    no_sums = tmp_path / "nosums.tar.gz"
    _rewrite(bundle, no_sums, {SUMS: None})
    assert verify_bundle(no_sums) == [f"missing: {SUMS}"]
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(gzip.compress(b"not a tar"))
    assert "not a readable bundle" in verify_bundle(garbage)[0]


def test_runbook_copied_from_record_path_without_snapshot(tmp_path: Path) -> None:
    run_dir = fx.make_run(tmp_path / "runs", with_runbook_snapshot=False)
    root = tmp_path / "project"
    (root / "drills").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "drills" / "postgres-failover.yml").write_text(fx.RUNBOOK_TEXT)
    for book in ("crash", "fence", "promote"):
        (root / "playbooks" / f"{book}.yml").write_text("- hosts: all\n")
    out = build_bundle(run_dir, tmp_path / "b.tar.gz", root)
    names = _names(out)
    assert f"{RUN_ID}/runbook/postgres-failover.yml" in names
    assert f"{RUN_ID}/runbook/playbooks/promote.yml" in names
    notes = _member(out, NOTES).decode()
    assert "playbook repoint.yml: not found" in notes
    assert verify_bundle(out) == []


def test_report_command_formats_and_bundle(tmp_path: Path) -> None:
    from drdrill.commands.report_cmd import command

    runs = tmp_path / "runs"
    run_dir = fx.make_run(runs)
    runner = CliRunner()
    result = runner.invoke(command, [RUN_ID, "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(runs / RUN_ID / "report.html")
    assert (run_dir / "report.html").is_file()
    md = runner.invoke(command, [str(run_dir), "--format", "md", "-o", "-"])
    assert md.exit_code == 0 and md.output.startswith("# After-action report")
    junit = runner.invoke(command, [str(run_dir), "--format", "junit"])
    assert junit.exit_code == 0 and (run_dir / "junit.xml").is_file()
    js = runner.invoke(command, [str(run_dir), "--format", "json"])
    assert js.exit_code == 0 and '"run_id"' in js.output
    target = tmp_path / "evidence.tar.gz"
    bundled = runner.invoke(command, [str(run_dir), "--format", "bundle", "-o", str(target)])
    assert bundled.exit_code == 0, bundled.output
    assert verify_bundle(target) == []
    stdout_bundle = runner.invoke(command, [str(run_dir), "--format", "bundle", "-o", "-"])
    assert stdout_bundle.exit_code != 0
    missing = runner.invoke(command, ["no-such-run", "--runs-dir", str(runs)])
    assert missing.exit_code != 0
