"""``drdrill run --exercise``: before anything runs, check that the participant is in the
manifest, that the signing key is theirs, and that the runbook provides every common check;
then the stamp journaled in ``run_started`` (exercise id, participant, which step provides
which check, the shared T0) and, after the record is written, its signature."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drdrill.errors import BadInput
from drdrill.exercise.keys import KEY_ENV, load_private, public_text
from drdrill.exercise.manifest import Check, Manifest, iso, load_manifest
from drdrill.runbook.model import Runbook


@dataclass(frozen=True)
class ExerciseRun:
    manifest: Manifest
    participant: str
    key: Ed25519PrivateKey
    providers: dict[str, str]  # check id -> step name (step checks only)

    @property
    def declared_t0(self) -> datetime | None:
        """The shared T0 when the manifest declares it for every run, else None."""
        return self.manifest.t0 if self.manifest.t0_source == "declared" else None

    def stamp(self) -> dict[str, Any]:
        return {"id": self.manifest.id, "participant": self.participant,
                "t0": iso(self.manifest.t0), "t0_source": self.manifest.t0_source,
                "objectives": {"rto_s": self.manifest.rto_s, "rpo_s": self.manifest.rpo_s},
                "checks": dict(sorted(self.providers.items())),
                # which key signs this run: resume (another process) must sign with the same
                "public_key": public_text(self.key.public_key())}


def prepare_exercise(manifest_path: Path, participant: str | None, key_path: Path | None,
                     runbook: Runbook) -> ExerciseRun:
    manifest = load_manifest(manifest_path)
    if not participant:
        raise BadInput("--exercise needs --participant NAME (one of the manifest's)")
    entry = manifest.participant(participant)
    if entry is None:
        names = ", ".join(p.name for p in manifest.participants)
        raise BadInput(f"{participant!r} is not a participant of exercise {manifest.id}",
                       hint=f"participants: {names}")
    key_file = key_path or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    if key_file is None:
        raise BadInput("an exercise run is signed: pass --key NAME.key or set "
                       f"${KEY_ENV}")
    key = load_private(key_file)
    if public_text(key.public_key()) != entry.public_key:
        raise BadInput(f"{key_file} is not {participant}'s key in {manifest_path}",
                       hint="use the key whose .pub was given to the coordinator")
    providers, missing = map_checks(manifest.checks, runbook)
    if missing:
        raise BadInput(f"{runbook.path} does not provide the exercise's common checks: "
                       + "; ".join(missing),
                       hint="name a step after the check or add exercise_check: <id> to it")
    return ExerciseRun(manifest, participant, key, providers)


def resume_key(stamp: dict[str, Any] | None, key_path: Path | None) -> Ed25519PrivateKey | None:
    """The key that re-signs an exercise run on resume (its record is rewritten, so the
    signature must be too): ``--key`` or $DRDRILL_EXERCISE_KEY, the same key the run was
    started with. None for a run that is not an exercise run. Checked before anything
    runs: a resume that could not sign would leave a participant's result unverifiable."""
    if not stamp:
        return None
    key_file = key_path or (Path(os.environ[KEY_ENV]) if os.environ.get(KEY_ENV) else None)
    who = f"{stamp.get('participant')} in exercise {stamp.get('id')}"
    if key_file is None:
        raise BadInput(f"this run is {who}: its record is signed again after the resume",
                       hint=f"pass --key NAME.key or set ${KEY_ENV}")
    key = load_private(key_file)
    expected = stamp.get("public_key")
    if expected is not None and public_text(key.public_key()) != expected:
        raise BadInput(f"{key_file} is not the key this run was started with ({who})",
                       hint="use the key the run was started with")
    return key


def declared_checks(runbook: Runbook) -> dict[str, str]:
    """step name -> ``exercise_check:`` as written in the runbook file (walks nested
    groups: any mapping with a name and an exercise_check)."""
    found: dict[str, str] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and isinstance(node.get("exercise_check"), str):
                found[node["name"]] = node["exercise_check"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    data = yaml.safe_load(runbook.path.read_text("utf-8"))
    walk(data.get("steps") if isinstance(data, dict) else None)
    return found


def map_checks(checks: tuple[Check, ...], runbook: Runbook) -> tuple[dict[str, str], list[str]]:
    """Which step provides each step check (a declared exercise_check first, then a step
    named as the check lists), and what is missing, worded for the operator."""
    declared = declared_checks(runbook)
    names = [s.name for s in runbook.steps]
    providers: dict[str, str] = {}
    missing: list[str] = []
    for check in checks:
        if check.kind == "rto" and runbook.service is None:
            missing.append(f"{check.id} (RTO needs a service: probe)")
        elif check.kind == "rpo" and runbook.canary is None:
            missing.append(f"{check.id} (RPO needs a canary:)")
        elif check.kind == "step":
            step = next((n for n in names if declared.get(n) == check.id), None) or next(
                (n for n in names if n in check.steps), None)
            if step is None:
                missing.append(f"{check.id} ({check.title})")
            else:
                providers[check.id] = step
    return providers, missing
