"""``exercise merge``: accept each participant's result only when its evidence is intact,
it is signed with the manifest's key for that participant, it names this exercise and was
produced inside its window, and it is the participant's only result. Every refusal names
the file and the reason; the rest are merged into the participant x check matrix."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from drdrill.errors import BadInput
from drdrill.exercise.manifest import Check, Manifest, parse_time
from drdrill.exercise.signing import RECORD_FILE, SIG_NAME, parse_signature, signature_problems
from drdrill.journal.store import JOURNAL_NAME, parse_lines
from drdrill.journal.verify import Evidence, MemoryEvidence, RunDirEvidence, verify_evidence

OK, FAILED, MISSING = "ok", "failed", "missing"


@dataclass(frozen=True)
class Refusal:
    source: str
    category: str  # tampered | unsigned | foreign | wrong key | out of window | duplicate
    detail: str


@dataclass(frozen=True)
class Outcome:
    check: str
    outcome: str  # ok | failed | missing
    detail: str | None = None


@dataclass(frozen=True)
class Result:
    participant: str
    source: str
    run_id: str
    status: str
    started_at: str
    rto_s: float | None
    rpo_s: float | None
    outcomes: tuple[Outcome, ...]

    def outcome(self, check: str) -> Outcome:
        return next(o for o in self.outcomes if o.check == check)


@dataclass(frozen=True)
class Merged:
    manifest: Manifest
    results: tuple[Result, ...]  # accepted, in the manifest's participant order
    refused: tuple[Refusal, ...]

    def result_for(self, participant: str) -> Result | None:
        return next((r for r in self.results if r.participant == participant), None)


class _Refused(Exception):
    def __init__(self, category: str, detail: str) -> None:
        super().__init__(detail)
        self.category, self.detail = category, detail


def merge_results(manifest: Manifest, sources: list[Path]) -> Merged:
    accepted: dict[str, Result] = {}
    run_ids: dict[str, str] = {}
    refused: list[Refusal] = []
    for source in sources:
        try:
            result = accept(manifest, source)
            if result.participant in accepted:
                raise _Refused("duplicate", f"{result.participant} already has a result "
                               f"({accepted[result.participant].source})")
            if result.run_id in run_ids:
                raise _Refused("duplicate", f"run {result.run_id} already merged from "
                               f"{run_ids[result.run_id]}")
        except _Refused as exc:
            refused.append(Refusal(str(source), exc.category, exc.detail))
            continue
        accepted[result.participant] = result
        run_ids[result.run_id] = str(source)
    ordered = tuple(accepted[p.name] for p in manifest.participants if p.name in accepted)
    return Merged(manifest, ordered, tuple(refused))


def open_evidence(source: Path) -> tuple[Evidence, list[str]]:
    """The files of a run directory or an evidence bundle, and their integrity problems."""
    if source.is_dir():
        evidence: Evidence = RunDirEvidence(source)
        return evidence, verify_evidence(evidence).problems
    if not source.is_file():
        raise _Refused("unreadable", "no such run directory or bundle")
    from drdrill.report.bundle import verify_bundle

    problems = verify_bundle(source)
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None and len(parts) > 1 and ".." not in parts:
                    contents[PurePosixPath(*parts[1:]).as_posix()] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise _Refused("unreadable", f"not a run directory or bundle: {exc}") from exc
    return MemoryEvidence(contents), problems


def accept(manifest: Manifest, source: Path) -> Result:
    """The result of ``source``, or _Refused with the first reason it cannot count."""
    evidence, problems = open_evidence(source)
    if problems:
        raise _Refused("tampered", "; ".join(problems[:3]))
    record: dict[str, Any] = json.loads(evidence.read(RECORD_FILE) or b"{}")
    sig_raw = evidence.read(SIG_NAME)
    if sig_raw is None:
        raise _Refused("unsigned", f"no {SIG_NAME}: not an exercise run, or its signature "
                       "was removed")
    stamp = record.get("exercise") or {}
    if stamp.get("id") != manifest.id:
        raise _Refused("foreign", f"belongs to exercise {stamp.get('id')!r}, not "
                       f"{manifest.id!r}")
    participant = manifest.participant(str(stamp.get("participant")))
    if participant is None:
        raise _Refused("foreign", f"participant {stamp.get('participant')!r} is not in "
                       "the manifest")
    try:
        sig = parse_signature(sig_raw, SIG_NAME)
    except BadInput as exc:
        raise _Refused("tampered", exc.message) from exc
    if (sig.exercise, sig.participant) != (manifest.id, participant.name):
        raise _Refused("tampered", f"{SIG_NAME} names {sig.participant!r} in "
                       f"{sig.exercise!r}, the record {participant.name!r}")
    wrong = signature_problems(sig_raw, evidence.read(RECORD_FILE),
                               str(record.get("journal_last_hash")), SIG_NAME,
                               expected_key=participant.public_key)
    if wrong:
        raise _Refused("wrong key", wrong[0])
    _check_window(manifest, record)
    _check_journal_stamp(evidence, record)
    return _result(manifest, participant.name, str(source), record)


def _check_window(manifest: Manifest, record: dict[str, Any]) -> None:
    for key in ("started_at", "finished_at"):
        value = record.get(key)
        moment = parse_time(str(value), key) if value else None
        if moment is None or not manifest.window_start <= moment <= manifest.window_end:
            raise _Refused("out of window", f"{key} {value} is outside the exercise window "
                           f"{manifest.window_start.isoformat()} / "
                           f"{manifest.window_end.isoformat()}")


def _check_journal_stamp(evidence: Evidence, record: dict[str, Any]) -> None:
    """Belt and braces: the stamp is the journal's run_started one (verify derives it)."""
    lines = parse_lines(evidence.read(JOURNAL_NAME) or b"")
    started = next((ln.body for ln in lines if ln.body.get("type") == "run_started"), None)
    if started is None or (started.get("data") or {}).get("exercise") != record.get("exercise"):
        raise _Refused("tampered", "the exercise stamp differs from the journal's run_started")


def _result(manifest: Manifest, participant: str, source: str,
            record: dict[str, Any]) -> Result:
    results = record.get("results") or {}
    outcomes = tuple(check_outcome(c, manifest, record) for c in manifest.checks)
    return Result(participant, source, str(record.get("run_id")), str(record.get("status")),
                  str(record.get("started_at")), _number(results.get("rto_s")),
                  _number(results.get("rpo_s")), outcomes)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def check_outcome(check: Check, manifest: Manifest, record: dict[str, Any]) -> Outcome:
    """ok / failed / missing for one common check, from the record alone."""
    results = record.get("results") or {}
    if check.kind in ("rto", "rpo"):
        value = _number(results.get(f"{check.kind}_s"))
        limit = manifest.rto_s if check.kind == "rto" else manifest.rpo_s
        if value is None:
            reason = results.get(f"{check.kind}_reason") or "not measured"
            return Outcome(check.id, MISSING, str(reason))
        return Outcome(check.id, OK if value <= limit else FAILED,
                       f"{value:.3f}s (objective {limit:g}s)")
    step = ((record.get("exercise") or {}).get("checks") or {}).get(check.id)
    if step is None:
        return Outcome(check.id, MISSING, "no step of the run provides it")
    rows = [s for s in record.get("steps") or [] if s.get("name") == step
            and s.get("phase", "main") == "main"]
    if not rows:
        return Outcome(check.id, MISSING, f"step {step!r} did not run")
    row = rows[-1]
    if row.get("status") != "ok":
        return Outcome(check.id, FAILED, f"{step}: {row.get('status')} {row.get('error') or ''}"
                       .strip())
    if check.id == "verify_data" and results.get("data_verified") is False:
        return Outcome(check.id, FAILED, "data verification missed (writes lost)")
    return Outcome(check.id, OK, step)
