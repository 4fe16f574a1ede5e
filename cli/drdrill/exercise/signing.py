"""``record.sig``: a participant's detached signature over its run's ``record.json`` bytes
and the journal's last hash. The record already derives from the hash-chained journal
(verify checks that), so signing these two binds the whole journal to the participant's key.

The file is JSON: who signed (exercise, participant, public key) and the signature. The
embedded key only lets ``drdrill verify`` check integrity alone; whether it is the right key
is the manifest's word, checked by ``exercise merge``."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drdrill.errors import BadInput
from drdrill.exercise.keys import parse_public, public_text, signature_valid

SIG_NAME = "record.sig"
RECORD_FILE = "record.json"
_DOMAIN = b"drdrill record.sig v1\n"


@dataclass(frozen=True)
class Signature:
    exercise: str | None
    participant: str | None
    public_key: str
    journal_last_hash: str
    signature: bytes


def message(record_bytes: bytes, last_hash: str) -> bytes:
    """What is signed: a domain tag, the journal's last hash, then the record's exact bytes."""
    return _DOMAIN + last_hash.encode("ascii") + b"\n" + record_bytes


def sign_run(run_dir: Path, key: Ed25519PrivateKey) -> Path:
    """Sign ``run_dir/record.json`` (already written, derived from the journal); write
    ``record.sig`` 0600 next to it."""
    record_bytes = (run_dir / RECORD_FILE).read_bytes()
    record = json.loads(record_bytes)
    last_hash = str(record.get("journal_last_hash"))
    exercise = record.get("exercise") or {}
    body = {"version": 1, "algorithm": "ed25519",
            "exercise": exercise.get("id"), "participant": exercise.get("participant"),
            "public_key": public_text(key.public_key()), "journal_last_hash": last_hash,
            "signature": base64.b64encode(key.sign(message(record_bytes, last_hash))
                                          ).decode("ascii")}
    path = run_dir / SIG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def parse_signature(raw: bytes, where: str) -> Signature:
    try:
        body: Any = json.loads(raw)
        if not isinstance(body, dict) or body.get("algorithm") != "ed25519":
            raise ValueError("not a drdrill ed25519 signature")
        return Signature(exercise=body.get("exercise"), participant=body.get("participant"),
                         public_key=str(body["public_key"]),
                         journal_last_hash=str(body["journal_last_hash"]),
                         signature=base64.b64decode(str(body["signature"]), validate=True))
    except (ValueError, KeyError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadInput(f"{where}: unreadable signature file ({exc})") from exc


def signature_problems(sig_raw: bytes, record_raw: bytes | None, last_hash: str,
                       where: str, expected_key: str | None = None) -> list[str]:
    """Why ``record.sig`` does not vouch for this record and journal; empty when it does.
    ``expected_key``: the key it must be made with (the manifest's); None: its own."""
    try:
        sig = parse_signature(sig_raw, where)
        public = parse_public(expected_key or sig.public_key, where)
    except BadInput as exc:
        return [exc.message]
    if record_raw is None:
        return [f"{where}: signs a record.json that is missing"]
    if sig.journal_last_hash != last_hash:
        return [f"{where}: signed a different journal (its last hash is not the journal's)"]
    if not signature_valid(public, sig.signature, message(record_raw, last_hash)):
        if expected_key is not None and expected_key != sig.public_key:
            return [f"{where}: not signed with the manifest's key for "
                    f"{sig.participant!r}"]
        return [f"{where}: signature does not match record.json and the journal "
                "(record edited after signing)"]
    return []
