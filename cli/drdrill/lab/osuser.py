"""Run PostgreSQL commands as the unprivileged account the lab belongs to.

As an ordinary user the lab runs as that user. As root (PostgreSQL refuses root) every
PostgreSQL command runs through ``runuser -u ACCOUNT --`` with an argv list — never a shell
string — as the ``postgres`` account if it exists, else ``nobody``; ``DRDRILL_LAB_OS_USER``
chooses another. Files the lab writes are chowned to that account.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import LabError


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int
    run_as: tuple[str, ...]  # argv prefix; empty when we already are that user

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [*self.run_as, *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as this account, in its own session (so a Ctrl-C at the terminal never
        reaches a postmaster it starts), with cwd ``/`` (root's home is not readable)."""
        try:
            done = subprocess.run(self.argv(argv), capture_output=True, text=True,
                                  timeout=timeout, cwd="/", start_new_session=True,
                                  check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from exc
        if check and done.returncode != 0:
            out = (done.stderr.strip() or done.stdout.strip()).splitlines()[-6:]
            raise LabError(f"{Path(argv[0]).name} failed (exit {done.returncode}): "
                           + " | ".join(out))
        return done

    def own(self, path: Path) -> None:
        """Give ``path`` to this account (no-op unless we run as root)."""
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def write_file(self, path: Path, text: str, mode: int = 0o600) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        self.own(tmp)
        os.replace(tmp, path)

    def make_dir(self, path: Path, mode: int = 0o700) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        self.own(path)


def lab_os_user() -> OsUser:
    """The account PostgreSQL runs as; LabError if, as root, none is usable."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, ())
    wanted = os.environ.get("DRDRILL_LAB_OS_USER")
    for name in ([wanted] if wanted else ["postgres", "nobody"]):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise LabError(f"DRDRILL_LAB_OS_USER={name} is root; PostgreSQL refuses to run as root")
        runuser = shutil.which("runuser")
        if runuser is None:
            raise LabError("running as root but `runuser` (util-linux) is not installed",
                           hint="install util-linux, or run drdrill lab as an ordinary user")
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, (runuser, "-u", name, "--"))
    raise LabError(f"running as root and no unprivileged account {wanted or 'postgres/nobody'}"
                   " exists for PostgreSQL",
                   hint="create one (useradd --system postgres) or set DRDRILL_LAB_OS_USER")


def ensure_traversable(path: Path, user: OsUser) -> list[str]:
    """Make every ancestor of ``path`` searchable by ``user`` (adds o+x, never read), as root
    only. Returns a note per directory changed, for the status notes."""
    if os.geteuid() != 0 or user.uid == 0:
        return []
    notes: list[str] = []
    for parent in reversed(path.absolute().parents):
        info = parent.stat()
        if info.st_uid == user.uid:
            continue
        if info.st_gid == user.gid and info.st_mode & stat.S_IXGRP:
            continue
        if not info.st_mode & stat.S_IXOTH:
            os.chmod(parent, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            notes.append(f"made {parent} searchable (o+x) so {user.name} can reach the lab")
    return notes
