"""ed25519 key pairs for exercise participants, through ``cryptography`` (no hand-written
crypto). The private key is a PKCS#8 PEM file written 0600 and never printed; the public key
travels as one line, ``ed25519:<base64 of the 32 raw bytes>``, which the manifest copies."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drdrill.errors import BadInput

PREFIX = "ed25519:"
KEY_ENV = "DRDRILL_EXERCISE_KEY"


def keygen(name: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` (0600, created exclusively: an existing key is never overwritten)
    and ``NAME.pub``; return both paths."""
    if not name or "/" in name or name.startswith("."):
        raise BadInput(f"key name {name!r}: use a plain file name (letters, digits, - _)")
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if key_path.exists() or pub_path.exists():
        raise BadInput(f"{key_path} or {pub_path} already exists",
                       hint="pick another name or directory; keys are never overwritten")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    pub_path.write_text(public_text(private.public_key()) + "\n")
    return key_path, pub_path


def public_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str, where: str) -> Ed25519PublicKey:
    """The public key of one ``ed25519:...`` line (a .pub file's or the manifest's)."""
    value = text.strip()
    if not value.startswith(PREFIX):
        raise BadInput(f"{where}: not an ed25519 public key (expected {PREFIX}<base64>)")
    try:
        raw = base64.b64decode(value[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"{where}: not an ed25519 public key ({exc})") from exc


def read_public_file(path: Path) -> str:
    """The normalised one-line public key of a .pub file (checked to parse)."""
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the public key: {exc.strerror}") from exc
    return public_text(parse_public(text, str(path)))


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BadInput(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path}: not an ed25519 key (make one with drdrill exercise keygen)")
    return key


def signature_valid(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True
