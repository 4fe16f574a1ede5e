"""The evidence bundle: one ``.tar.gz`` an auditor can keep and check on its own.

Layout (everything under one directory named after the run)::

    <run-id>/journal.jsonl  record.json          as recorded
    <run-id>/report.html report.md junit.xml      rebuilt from the journal/record
    <run-id>/runbook/...                          the runbook and playbooks as run
    <run-id>/steps/...                            step artifacts; any other run file as is
    <run-id>/bundle-notes.txt                     what could not be included (if anything)
    <run-id>/SHA256SUMS                           ``sha256sum`` format, every other file

``cd <run-id> && sha256sum -c SHA256SUMS`` checks it without drdrill; ``verify_bundle`` does
that plus the journal's hash chain and its agreement with the record.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from drdrill.journal.verify import MemoryEvidence, verify_evidence
from drdrill.report import RECORD_NAME, load_run
from drdrill.report.data import section
from drdrill.report.html import render_html
from drdrill.report.junit import render_junit
from drdrill.report.markdown import render_markdown

SUMS = "SHA256SUMS"
NOTES = "bundle-notes.txt"
REGENERATED = ("report.html", "report.md", "junit.xml")
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def build_bundle(run_dir: Path, out: Path, runbook_root: Path | None = None) -> Path:
    """Write the evidence bundle of ``run_dir`` to ``out`` (atomically) and return ``out``.
    ``runbook_root`` resolves relative runbook/playbook paths of a run without a ``runbook/``
    snapshot (default: the current directory)."""
    record, events = load_run(run_dir)
    files: dict[str, bytes | Path] = {}
    notes: list[str] = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            notes.append(f"{rel}: symbolic link not included")
        elif path.is_file() and rel not in REGENERATED and not _own_temp(rel):
            files[rel] = path
    if RECORD_NAME not in files:
        files[RECORD_NAME] = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        notes.append(f"{RECORD_NAME}: absent from the run directory, derived from the journal")
    files["report.html"] = render_html(record, events).encode()
    files["report.md"] = render_markdown(record, events).encode()
    files["junit.xml"] = render_junit(record).encode()
    if not (run_dir / "runbook").is_dir():
        _add_runbook(record, runbook_root or Path.cwd(), files, notes)
    if notes:
        files[NOTES] = ("".join(f"{n}\n" for n in notes)).encode()
    sums = "".join(f"{_sha(content)}  {name}\n" for name, content in sorted(files.items()))
    files[SUMS] = sums.encode()
    top = run_dir.resolve().name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    mtime = time.time()
    with tarfile.open(tmp, "w:gz") as tar:
        for name, content in sorted(files.items()):
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
    return out


def _own_temp(rel: str) -> bool:
    """drdrill's half-written top-level files (``record.json.tmp``). A ``.tmp`` under
    steps/ is a step artifact (ansible-runner's, left by a process killed mid-write): it is
    listed in ARTIFACTS.sha256 and kept as evidence of the crash."""
    return rel.endswith(".tmp") and "/" not in rel


def _sha(content: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
        return digest.hexdigest()
    with open(content, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _add_runbook(record: dict[str, Any], root: Path, files: dict[str, bytes | Path],
                 notes: list[str]) -> None:
    """Copy the runbook named in the record and the playbooks it calls under ``runbook/``."""
    runbook = section(record, "runbook")
    raw = runbook.get("path")
    path = Path(raw) if isinstance(raw, str) and raw else None
    if path is not None and not path.is_absolute():
        path = root / path
    if path is None or not path.is_file():
        notes.append(f"runbook: {raw or 'no path in the record'} not found under {root}")
        return
    content = path.read_bytes()
    files[f"runbook/{path.name}"] = content
    if runbook.get("sha256") and hashlib.sha256(content).hexdigest() != runbook["sha256"]:
        notes.append(f"runbook: {path} changed since the run (sha256 differs from the record)")
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        notes.append(f"runbook: not parseable, playbooks not collected: {exc}")
        return
    doc = document if isinstance(document, dict) else {}
    dirs = [path.parent, root, root / "playbooks", path.parent / "playbooks",
            path.parent.parent / "playbooks"]
    if isinstance(doc.get("playbook_dir"), str):
        dirs.insert(0, path.parent / doc["playbook_dir"])
    for name in sorted(_playbooks(doc)):
        found = next((d / name for d in dirs if (d / name).is_file()), None)
        safe = PurePosixPath(name.replace("\\", "/"))
        arc = safe.name if ".." in safe.parts or safe.is_absolute() else safe.as_posix()
        if found is None:
            notes.append(f"playbook {name}: not found")
        else:
            files[f"runbook/playbooks/{arc}"] = found


def _playbooks(doc: dict[str, Any]) -> set[str]:
    """Playbooks of every step: rollback.steps and parallel groups' members included."""
    from drdrill.runbook.walk import walk_steps

    return {raw.data["playbook"] for raw in walk_steps(doc)
            if isinstance(raw.data.get("playbook"), str)}


def verify_bundle(path: Path) -> list[str]:
    """Problems with an evidence bundle, empty when intact: every file listed in SHA256SUMS
    present with its checksum and no file left uncovered (the bundle's own check), then
    the same checks as ``drdrill verify`` on a run directory (journal/verify.py: hash chain,
    record, artifacts, inputs snapshot against its journaled manifest)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            contents, problems = _read_members(tar)
    except (OSError, tarfile.TarError, EOFError) as exc:
        return [f"{path}: not a readable bundle: {exc}"]
    sums = contents.pop(SUMS, None)
    if sums is None:
        return problems + [f"missing: {SUMS}"]
    listed: set[str] = set()
    for number, line in enumerate(sums.decode("utf-8", "replace").splitlines(), start=1):
        match = _SUM_LINE.match(line)
        if not match:
            problems.append(f"{SUMS} line {number}: not in sha256sum format")
            continue
        expected, name = match.groups()
        listed.add(name)
        if name not in contents:
            problems.append(f"missing: {name}")
        elif hashlib.sha256(contents[name]).hexdigest() != expected:
            problems.append(f"checksum mismatch: {name}")
    problems += [f"not covered by {SUMS}: {name}" for name in sorted(set(contents) - listed)]
    return problems + verify_evidence(MemoryEvidence(contents)).problems


def _read_members(tar: tarfile.TarFile) -> tuple[dict[str, bytes], list[str]]:
    """{path under the top directory: bytes} of the regular files, and unsafe members."""
    contents: dict[str, bytes] = {}
    problems: list[str] = []
    tops = set()
    for member in tar.getmembers():
        parts = PurePosixPath(member.name).parts
        if member.name.startswith("/") or ".." in parts or len(parts) < 1:
            problems.append(f"unsafe path in bundle: {member.name}")
            continue
        if member.isdir():
            continue
        if not member.isfile():
            problems.append(f"not a regular file: {member.name}")
            continue
        tops.add(parts[0])
        extracted = tar.extractfile(member)
        if extracted is not None and len(parts) > 1:
            contents[PurePosixPath(*parts[1:]).as_posix()] = extracted.read()
    if len(tops) > 1:
        problems.append(f"more than one top directory: {', '.join(sorted(tops))}")
    return contents, problems
