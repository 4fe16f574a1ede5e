"""``drdrill verify``: is a run's evidence intact? One implementation for a run directory
and for an evidence bundle (report/bundle.py adds only its own SHA256SUMS check).

Checks, and names the line or file that fails: the hash chain of journal.jsonl (each line's
``prev`` is the SHA-256 of the line before; ``seq`` counts up from 0), that record.json
equals what the journal derives (including the final hash), the checksums of step
artifacts listed in ARTIFACTS.sha256 when the run wrote one, and the inputs snapshot
(``runbook/``: runbook, inventory, whole playbook directory) against the per-file manifest
journaled in ``inputs_snapshot`` — inside the hash chain, so it cannot be rewritten to match
an edited file without breaking the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drdrill.journal.record import RECORD_NAME, build_record
from drdrill.journal.store import GENESIS, JOURNAL_NAME, JournalLine, line_hash, parse_lines

ARTIFACT_SUMS = "ARTIFACTS.sha256"
SNAPSHOT_DIR = "runbook"
SNAPSHOT_EVENT = "inputs_snapshot"


class Evidence(Protocol):
    """The files of a run, wherever they are kept (a run directory, a bundle in memory)."""

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name`` (a path relative to the run), None when absent."""

    def names(self) -> list[str]:
        """Every regular file, as a relative POSIX path."""

    def where(self, name: str) -> str:
        """How a problem message names ``name``."""


@dataclass(frozen=True)
class RunDirEvidence:
    run_dir: Path

    def read(self, name: str) -> bytes | None:
        path = self.run_dir / name
        return path.read_bytes() if path.is_file() and not path.is_symlink() else None

    def names(self) -> list[str]:
        return sorted(p.relative_to(self.run_dir).as_posix() for p in self.run_dir.rglob("*")
                      if p.is_file() and not p.is_symlink())

    def where(self, name: str) -> str:
        return str(self.run_dir / name)


@dataclass(frozen=True)
class MemoryEvidence:
    contents: Mapping[str, bytes]

    def read(self, name: str) -> bytes | None:
        return self.contents.get(name)

    def names(self) -> list[str]:
        return sorted(self.contents)

    def where(self, name: str) -> str:
        return name


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def manifest_digest(files: Mapping[str, str]) -> str:
    """SHA-256 of the manifest in ``sha256sum`` format (``<hex>  <path>\\n``, sorted by
    path), so an auditor can recompute it with coreutils."""
    text = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_chain(data: bytes, where: str, report: VerifyReport) -> str | None:
    """Walk the chain; return the last hash, or None if it broke (problem recorded)."""
    previous = GENESIS
    if data and not data.endswith(b"\n"):
        torn_line = data.count(b"\n") + 1
        report.problems.append(f"{where}:{torn_line}: torn last line "
                               "(the run was interrupted mid-write; resume it to repair)")
        return None
    lines = data.splitlines()
    for number, raw in enumerate(lines, start=1):
        report.lines = number
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            report.problems.append(f"{where}:{number}: not valid JSON (line altered)")
            return None
        if not isinstance(body, dict) or body.get("prev") != previous:
            report.problems.append(_chain_break(where, lines, number, body))
            return None
        if body.get("seq") != number - 1:
            report.problems.append(f"{where}:{number}: seq {body.get('seq')} where "
                                   f"{number - 1} expected (lines removed or reordered)")
            return None
        previous = line_hash(raw)
    return previous


def _chain_break(where: str, lines: list[bytes], number: int, body: object) -> str:
    """Name the line that was tampered with. Line ``number``'s ``prev`` does not match the
    line before. If this line is otherwise in place (its seq is right and the next line
    still chains to it), the line before is the one whose bytes were changed."""
    seq = body.get("seq") if isinstance(body, dict) else None
    if seq == number - 1 and number < len(lines):
        try:
            following = json.loads(lines[number])
        except json.JSONDecodeError:
            following = None
        next_prev = following.get("prev") if isinstance(following, dict) else None
        if next_prev == line_hash(lines[number - 1]):
            return (f"{where}:{number - 1}: line altered: its SHA-256 no longer matches "
                    f"the prev recorded on line {number}")
    return (f"{where}:{number}: hash chain broken: prev does not match the line before "
            "(a line was altered, removed, inserted or reordered at this line)")


def _check_record(evidence: Evidence, lines: list[JournalLine], last_hash: str,
                  report: VerifyReport) -> None:
    where = evidence.where(RECORD_NAME)
    raw = evidence.read(RECORD_NAME)
    if raw is None:
        report.problems.append(f"{where}: missing (run unfinished? try drdrill resume)")
        return
    try:
        written = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        written = None
    if not isinstance(written, dict):
        report.problems.append(f"{where}: not valid JSON")
        return
    try:
        derived = json.loads(json.dumps(build_record([ln.event() for ln in lines], last_hash),
                                        sort_keys=True, default=str))
    except (KeyError, TypeError, ValueError) as exc:
        report.problems.append(f"{evidence.where(JOURNAL_NAME)}: a record cannot be derived "
                               f"from it: {exc}")
        return
    if written.get("journal_last_hash") != last_hash:
        report.problems.append(f"{where}: journal_last_hash does not match the journal's "
                               f"last line {report.lines} (that line altered, or the journal "
                               "truncated or extended after the run)")
    for key in sorted(set(derived) | set(written)):
        if derived.get(key) != written.get(key):
            report.problems.append(f"{where}: field {key!r} differs from what the "
                                   "journal derives (record edited)")


def _check_artifacts(evidence: Evidence, report: VerifyReport) -> None:
    sums = evidence.read(ARTIFACT_SUMS)
    if sums is None:
        return
    where = evidence.where(ARTIFACT_SUMS)
    for number, line in enumerate(sums.decode("utf-8", "replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        content = evidence.read(name)
        if content is None:
            report.problems.append(f"{where}:{number}: {name} is missing")
        elif hashlib.sha256(content).hexdigest() != digest:
            report.problems.append(f"{where}:{number}: {name} was modified")


def snapshot_problems(evidence: Evidence, lines: list[JournalLine]) -> list[str]:
    """The inputs snapshot (``runbook/``) against the manifest journaled before the first
    step: every file there with its checksum, none added. Empty for a run journaled before
    the manifest existed (nothing to check against)."""
    found = next((ln for ln in lines if ln.body.get("type") == SNAPSHOT_EVENT), None)
    if found is None:
        return []
    data: dict[str, Any] = found.body.get("data") or {}
    files = data.get("files")
    at = f"the inputs snapshot journaled on line {found.number}"
    if not isinstance(files, dict) or manifest_digest(files) != data.get("digest"):
        return [f"{evidence.where(JOURNAL_NAME)}:{found.number}: the inputs snapshot "
                "manifest does not match its own digest"]
    problems = []
    for name, expected in sorted(files.items()):
        content = evidence.read(name)
        if content is None:
            problems.append(f"{evidence.where(name)}: missing (listed in {at})")
        elif hashlib.sha256(content).hexdigest() != expected:
            problems.append(f"{evidence.where(name)}: modified since the run (its SHA-256 "
                            f"differs from {at})")
    for name in evidence.names():
        if name.startswith(f"{SNAPSHOT_DIR}/") and name not in files:
            problems.append(f"{evidence.where(name)}: added after the run (not in {at})")
    return problems


def signature_problems(evidence: Evidence, last_hash: str) -> list[str]:
    """An exercise run's ``record.sig`` (when present) against record.json and the journal's
    last hash, with the key it names; which key is right is checked by ``exercise merge``."""
    from drdrill.exercise.signing import SIG_NAME
    from drdrill.exercise.signing import signature_problems as check

    raw = evidence.read(SIG_NAME)
    if raw is None:
        return []
    return check(raw, evidence.read(RECORD_NAME), last_hash, evidence.where(SIG_NAME))


def verify_evidence(evidence: Evidence) -> VerifyReport:
    """Every check above, on the files of one run."""
    report = VerifyReport()
    journal = evidence.read(JOURNAL_NAME)
    if journal is None:
        report.problems.append(f"{evidence.where(JOURNAL_NAME)}: missing")
        return report
    last_hash = _check_chain(journal, evidence.where(JOURNAL_NAME), report)
    lines = parse_lines(journal)
    if last_hash is not None:
        _check_record(evidence, lines, last_hash, report)
        report.problems += signature_problems(evidence, last_hash)
    _check_artifacts(evidence, report)
    report.problems += snapshot_problems(evidence, lines)
    return report


def verify_run(run_dir: Path) -> VerifyReport:
    return verify_evidence(RunDirEvidence(run_dir))


def write_artifact_sums(run_dir: Path) -> Path:
    """Checksum every file under steps/ and rollback/ (step artifacts) and the inputs snapshot."""
    lines = []
    for sub in ("steps", "rollback", SNAPSHOT_DIR):
        for path in sorted((run_dir / sub).rglob("*")) if (run_dir / sub).exists() else []:
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                lines.append(f"{digest}  {path.relative_to(run_dir).as_posix()}")
    out = run_dir / ARTIFACT_SUMS
    out.write_text("\n".join(lines) + ("\n" if lines else ""))
    return out
