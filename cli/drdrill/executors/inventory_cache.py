"""A cache of what Ansible made of an inventory, so ``drdrill validate -i`` starts fast.

Importing Ansible's InventoryManager and rendering the ``all`` vars (lookups, filters, Jinja
compiles) costs ~0.5-1 s; ``validate`` is run in an outage too, before the drill. Nothing is
re-implemented: the values are Ansible's own, stored after a real parse and replayed only
while every input of that parse is unchanged — the inventory's bytes and real path, the
Ansible release, every ``ANSIBLE_*`` variable and ansible.cfg, the interpreter, the working
directory, the values of the environment variables its lookups read, and the bytes (or
absence) of every file its ``file`` lookups reached. A file is cached only when all that is
knowable: a plain YAML/INI file (not a script, not an inventory plugin's config) without
vault or ``!unsafe`` values, no group_vars/host_vars beside it, and no lookup or function
other than ``file`` on an absolute path and ``env`` of a path-like variable (HOME, XDG_*,
DRDRILL_*_DIR) — so no secret from the environment is ever written to disk. Anything else is
simply parsed by Ansible every time. Entries are 0600 files in a 0700 directory:
``$DRDRILL_CACHE_DIR`` (empty: no cache), else ``${XDG_CACHE_HOME:-~/.cache}/drdrill``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
_KEEP = 64  # entries kept; the oldest go first

_ENV_LOOKUP = re.compile(
    r"lookup\(\s*(['\"])(?:ansible\.builtin\.)?env\1\s*,\s*(['\"])([A-Za-z_][A-Za-z0-9_]*)\2\s*\)")
_FILE_LOOKUP = re.compile(r"lookup\(\s*(['\"])(?:ansible\.builtin\.)?file\1\s*,")
_ANY_LOOKUP = re.compile(r"\blookup\b")
# anything whose result is not a function of the inputs above: other lookups, now(),
# random values, the file system or HOME through filters and tests, vault and unsafe text,
# inventory plugins (``plugin:``), Jinja blocks
_REFUSED = re.compile(
    r"\b(?:query|q)\b|\b(?:now|random|shuffle|password_hash)\s*\(|\|\s*(?:random|shuffle|"
    r"password_hash|expanduser|expandvars|realpath|abspath|relpath)\b|\bis\s+(?:not\s+)?"
    r"(?:exists|file|directory|link|mount|same_file|abs)\b|\$ANSIBLE_VAULT|!vault|!unsafe|"
    r"^\s*plugin\s*:|\{%", re.MULTILINE)
_SAFE_ENV = re.compile(r"^(?:HOME|PWD|USER|LOGNAME|TMPDIR|XDG_[A-Z_]+|DRDRILL_[A-Z_]*DIR)$")


@dataclass(frozen=True)
class Parsed:
    """What validate needs from Ansible's parse, as plain data."""

    hosts: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    all_vars: Mapping[str, Any]
    unrendered: Mapping[str, str]


@dataclass
class FileReads:
    """The files an inventory's ``file`` lookups reached (absolute needles only)."""

    paths: list[str] = field(default_factory=list)
    relative: bool = False

    def watch(self, loader: Any) -> None:
        """Record every needle of the loader's search (the file lookup's only way in)."""
        search: Callable[..., str] = loader.path_dwim_relative_stack

        def recorded(paths: Any, dirname: str, source: str, is_role: bool = False) -> str:
            if os.path.isabs(source):
                self.paths.append(source)
            else:
                self.relative = True
            return search(paths, dirname, source, is_role=is_role)

        loader.path_dwim_relative_stack = recorded


@dataclass(frozen=True)
class Slot:
    """Where ``path``'s entry lives and the key its inputs make."""

    file: Path
    key: str

    def load(self) -> Parsed | None:
        """The stored parse if its key and every file it read are unchanged, else None."""
        try:
            entry = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != self.key:
            return None
        files = entry.get("files")
        if not isinstance(files, list) or any(_file_state(p) != s for p, s in files):
            return None
        return Parsed(hosts=tuple(entry["hosts"]),
                      groups={g: tuple(m) for g, m in entry["groups"].items()},
                      all_vars=entry["all_vars"], unrendered=entry["unrendered"])

    def store(self, parsed: Parsed, reads: FileReads) -> None:
        """Keep ``parsed`` unless a read escapes the key or a value is not plain JSON."""
        if reads.relative:
            return
        files = [[p, _file_state(p)] for p in dict.fromkeys(reads.paths)]
        entry = {"key": self.key, "files": files, "hosts": list(parsed.hosts),
                 "groups": {g: list(m) for g, m in parsed.groups.items()},
                 "all_vars": dict(parsed.all_vars), "unrendered": dict(parsed.unrendered)}
        try:
            text = json.dumps(entry)  # keeps Ansible's order
        except (TypeError, ValueError):
            return
        if json.loads(text)["all_vars"] != entry["all_vars"]:
            return
        with contextlib.suppress(OSError):
            _write(self.file, text)


def slot_for(path: Path, raw: bytes) -> Slot | None:
    """The cache slot for inventory ``path`` (bytes ``raw``), or None if it is not cacheable
    or the cache is off."""
    directory = _cache_dir()
    if directory is None:
        return None
    env_names = cacheable_env(path, raw)
    if env_names is None:
        return None
    real = os.path.realpath(path)
    inputs = {
        "format": FORMAT, "inventory": real, "sha256": hashlib.sha256(raw).hexdigest(),
        "ansible": _ansible_release(), "python": sys.executable, "cwd": os.getcwd(),
        "ansible_env": sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_")),
        "lookup_env": [(n, os.environ.get(n)) for n in env_names],
        "config": [(p, _file_state(p)) for p in _config_files()],
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return Slot(directory / f"inventory-{key[:32]}.json", key)


def cacheable_env(path: Path, raw: bytes) -> list[str] | None:
    """The environment variables the inventory's lookups read, or None if its parse
    depends on anything the cache key cannot capture."""
    if os.access(path, os.X_OK) or any((path.parent / d).exists() or Path(d).exists()
                                       for d in ("group_vars", "host_vars")):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _REFUSED.search(text):
        return None
    env = [m.group(3) for m in _ENV_LOOKUP.finditer(text)]
    files = len(_FILE_LOOKUP.findall(text))
    if len(_ANY_LOOKUP.findall(text)) != len(env) + files:
        return None
    if not all(_SAFE_ENV.match(name) for name in env):
        return None
    return sorted(set(env))


def _cache_dir() -> Path | None:
    configured = os.environ.get("DRDRILL_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "drdrill"


def _ansible_release() -> str | None:
    """Ansible's release file, read without importing Ansible (that is what we avoid)."""
    spec = importlib.util.find_spec("ansible")
    if spec is None or not spec.submodule_search_locations:
        return None
    release = Path(next(iter(spec.submodule_search_locations))) / "release.py"
    return f"{release}:{_file_state(str(release))}"


def _config_files() -> list[str]:
    """Every place ansible.cfg may come from (Ansible reads the first that exists)."""
    places = [os.environ.get("ANSIBLE_CONFIG", ""), os.path.join(os.getcwd(), "ansible.cfg"),
              os.path.expanduser("~/.ansible.cfg"), "/etc/ansible/ansible.cfg"]
    return [p for p in places if p]


def _file_state(path: str) -> str | None:
    """A file's sha256, ``dir`` for a directory, None if absent."""
    try:
        if os.path.isdir(path):
            return "dir"
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _write(file: Path, text: str) -> None:
    """Atomically, 0600 in a 0700 directory; keep the newest entries only."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".inventory-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    entries = sorted(file.parent.glob("inventory-*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-_KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
