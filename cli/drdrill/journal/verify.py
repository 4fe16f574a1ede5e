"""``drdrill verify``: is a run's evidence intact?

Checks, in order, and names the first line that fails: the hash chain of journal.jsonl
(each line's ``prev`` is the SHA-256 of the line before; ``seq`` counts up from 0), that
record.json equals what the journal derives (including the final hash), and the checksums
of step artifacts listed in ARTIFACTS.sha256 when the run wrote one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from drdrill.journal.record import RECORD_NAME, build_record
from drdrill.journal.store import GENESIS, JOURNAL_NAME, line_hash

ARTIFACT_SUMS = "ARTIFACTS.sha256"


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def _check_chain(journal: Path, report: VerifyReport) -> str | None:
    """Walk the chain; return the last hash, or None if it broke (problem recorded)."""
    previous = GENESIS
    data = journal.read_bytes()
    if data and not data.endswith(b"\n"):
        torn_line = data.count(b"\n") + 1
        report.problems.append(f"{journal}:{torn_line}: torn last line "
                               "(the run was interrupted mid-write; resume it to repair)")
        return None
    lines = data.splitlines()
    for number, raw in enumerate(lines, start=1):
        report.lines = number
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            report.problems.append(f"{journal}:{number}: not valid JSON (line altered)")
            return None
        if body.get("prev") != previous:
            report.problems.append(_chain_break(journal, lines, number, body))
            return None
        if body.get("seq") != number - 1:
            report.problems.append(f"{journal}:{number}: seq {body.get('seq')} where "
                                   f"{number - 1} expected (lines removed or reordered)")
            return None
        previous = line_hash(raw)
    return previous


def _chain_break(journal: Path, lines: list[bytes], number: int, body: dict[str, object]
                 ) -> str:
    """Name the line that was tampered with. Line ``number``'s ``prev`` does not match the
    line before. If this line is otherwise in place (its seq is right and the next line
    still chains to it), the line before is the one whose bytes were changed."""
    in_place = body.get("seq") == number - 1 and number < len(lines)
    if in_place:
        try:
            next_prev = json.loads(lines[number]).get("prev")
        except json.JSONDecodeError:
            next_prev = None
        if next_prev == line_hash(lines[number - 1]):
            return (f"{journal}:{number - 1}: line altered: its SHA-256 no longer matches "
                    f"the prev recorded on line {number}")
    return (f"{journal}:{number}: hash chain broken: prev does not match the line before "
            "(a line was altered, removed, inserted or reordered at this line)")


def _check_record(run_dir: Path, last_hash: str, report: VerifyReport) -> None:
    from drdrill.journal.store import read_events

    record_path = run_dir / RECORD_NAME
    if not record_path.is_file():
        report.problems.append(f"{record_path}: missing (run unfinished? try drdrill resume)")
        return
    try:
        written = json.loads(record_path.read_text())
    except json.JSONDecodeError:
        report.problems.append(f"{record_path}: not valid JSON")
        return
    derived = json.loads(json.dumps(build_record(read_events(run_dir / JOURNAL_NAME),
                                                 last_hash), sort_keys=True, default=str))
    if written.get("journal_last_hash") != last_hash:
        report.problems.append(f"{record_path}: journal_last_hash does not match the journal's "
                               f"last line {report.lines} (that line altered, or the journal "
                               "truncated or extended after the run)")
    for key in sorted(set(derived) | set(written)):
        if derived.get(key) != written.get(key):
            report.problems.append(f"{record_path}: field {key!r} differs from what the "
                                   "journal derives (record edited)")


def _check_artifacts(run_dir: Path, report: VerifyReport) -> None:
    sums = run_dir / ARTIFACT_SUMS
    if not sums.is_file():
        return
    for number, line in enumerate(sums.read_text().splitlines(), start=1):
        digest, _, name = line.partition("  ")
        path = run_dir / name
        if not path.is_file():
            report.problems.append(f"{sums}:{number}: {name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            report.problems.append(f"{sums}:{number}: {name} was modified")


def write_artifact_sums(run_dir: Path) -> Path:
    """Checksum every file under steps/ and rollback/ (step artifacts) and the inputs snapshot."""
    lines = []
    for sub in ("steps", "rollback", "runbook"):
        for path in sorted((run_dir / sub).rglob("*")) if (run_dir / sub).exists() else []:
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                lines.append(f"{digest}  {path.relative_to(run_dir)}")
    out = run_dir / ARTIFACT_SUMS
    out.write_text("\n".join(lines) + ("\n" if lines else ""))
    return out


def verify_run(run_dir: Path) -> VerifyReport:
    report = VerifyReport()
    journal = run_dir / JOURNAL_NAME
    if not journal.is_file():
        report.problems.append(f"{journal}: missing")
        return report
    last_hash = _check_chain(journal, report)
    if last_hash is not None:
        _check_record(run_dir, last_hash, report)
    _check_artifacts(run_dir, report)
    return report
