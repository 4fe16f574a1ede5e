"""The exercise manifest: a YAML file (``kind: exercise``) with a JSON Schema shipped as
package data, loaded into frozen dataclasses. Every problem is reported, not the first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from drdrill.errors import BadInput, ValidationFailed
from drdrill.runbook.durations import format_duration, parse_duration


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    kind: str  # step | rto | rpo
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Participant:
    name: str
    public_key: str


@dataclass(frozen=True)
class Manifest:
    path: Path
    id: str
    scenario: str
    t0: datetime
    t0_source: str
    window_start: datetime
    window_end: datetime
    rto_s: float
    rpo_s: float
    checks: tuple[Check, ...]
    participants: tuple[Participant, ...]

    def participant(self, name: str) -> Participant | None:
        return next((p for p in self.participants if p.name == name), None)


# the common checks of issue 13: reach the backup site, a test transaction, verify data,
# RTO and RPO against the exercise objectives; step names are the usual ones in drills/
DEFAULT_CHECKS = (
    Check("reach_backup_site", "reach the backup site", "step",
          ("reach the backup site", "wait for the service", "wait for service")),
    Check("test_transaction", "complete a test transaction", "step",
          ("test transaction", "run a test transaction")),
    Check("verify_data", "verify the data", "step", ("verify data", "verify the data")),
    Check("rto", "RTO within the objective", "rto"),
    Check("rpo", "RPO within the objective", "rpo"),
)


def is_manifest(data: object) -> bool:
    """A YAML document is a manifest by ``kind: exercise`` or a top-level ``exercise:``."""
    return isinstance(data, dict) and (data.get("kind") == "exercise" or "exercise" in data)


def schema_text() -> str:
    return (resources.files("drdrill") / "schema" / "exercise.schema.json").read_text("utf-8")


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text()))


def parse_time(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"{where}: {value!r} is not ISO 8601 (e.g. 2026-11-22T09:00:00Z)") \
            from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """YAML reads unquoted timestamps as datetimes: back to ISO strings for the schema."""
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_manifest(path: Path) -> Manifest:
    try:
        data = _plain(yaml.safe_load(path.read_text("utf-8")))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the manifest: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValidationFailed([f"{path}: not valid YAML: {exc}"]) from exc
    problems = [f"{path}: {'.'.join(str(p) for p in err.absolute_path) or '(top)'}: "
                f"{err.message}" for err in _validator().iter_errors(data)]
    if problems:
        raise ValidationFailed(problems)
    return _build(path, data)


def _build(path: Path, data: dict[str, Any]) -> Manifest:
    problems: list[str] = []

    def moment(value: str, where: str) -> datetime:
        try:
            return parse_time(value, f"{path}: {where}")
        except BadInput as exc:
            problems.append(exc.message)
            return datetime.now(tz=UTC)

    t0 = moment(data["t0"], "t0")
    start = moment(data["window"]["start"], "window.start")
    end = moment(data["window"]["end"], "window.end")
    if start >= end:
        problems.append(f"{path}: window: start must be before end")
    objectives = []
    for key in ("rto", "rpo"):
        try:
            objectives.append(parse_duration(data["objectives"][key]))
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}: objectives.{key}: {exc}")
    checks = tuple(Check(c["id"], c["title"], c["kind"], tuple(c.get("steps", ())))
                   for c in data["checks"])
    participants = tuple(Participant(p["name"], p["public_key"]) for p in data["participants"])
    problems += _duplicates(path, "checks", [c.id for c in checks])
    problems += _duplicates(path, "participants", [p.name for p in participants])
    from drdrill.exercise.keys import parse_public  # cryptography: only for manifests

    for number, participant in enumerate(participants):
        try:
            parse_public(participant.public_key, f"{path}: participants.{number}.public_key")
        except BadInput as exc:
            problems.append(exc.message)
    if problems:
        raise ValidationFailed(problems)
    return Manifest(path, data["id"], data["scenario"], t0, data.get("t0_source", "declared"),
                    start, end, objectives[0], objectives[1], checks, participants)


def _duplicates(path: Path, what: str, names: list[str]) -> list[str]:
    return [f"{path}: {what}: {name!r} appears more than once"
            for name in sorted({n for n in names if names.count(n) > 1})]


def manifest_document(manifest: Manifest) -> dict[str, Any]:
    """The YAML form of a manifest (what ``exercise init`` writes)."""
    return {
        "kind": "exercise", "version": 1, "id": manifest.id, "scenario": manifest.scenario,
        "t0": iso(manifest.t0), "t0_source": manifest.t0_source,
        "window": {"start": iso(manifest.window_start), "end": iso(manifest.window_end)},
        "objectives": {"rto": format_duration(manifest.rto_s),
                       "rpo": format_duration(manifest.rpo_s)},
        "checks": [{"id": c.id, "title": c.title, "kind": c.kind,
                    **({"steps": list(c.steps)} if c.steps else {})} for c in manifest.checks],
        "participants": [{"name": p.name, "public_key": p.public_key}
                         for p in manifest.participants],
    }


def write_manifest(manifest: Manifest, out: Path) -> Path:
    header = ("# yaml-language-server: $schema=../cli/drdrill/schema/exercise.schema.json\n"
              f"# drdrill joint exercise {manifest.id}: give this file to every participant\n")
    out.write_text(header + yaml.safe_dump(manifest_document(manifest), sort_keys=False,
                                           allow_unicode=True))
    return out


def is_manifest_file(path: Path) -> bool:
    """Whether ``path`` holds a manifest (else it is a runbook, whose loader reports any
    unreadable or malformed file with locations)."""
    try:
        # libyaml when present (same safe loader, C speed): every runbook validate is given
        # passes through here before its own line-numbered parse
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return is_manifest(yaml.load(path.read_text("utf-8"), Loader=loader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
