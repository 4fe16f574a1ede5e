"""The two sites of the lab's service as processes: start with a version, kill, freeze, stop.

A site is ``python -m drdrill.lab.service serve SITE`` run detached (lab/process.py) as the
caller's account (see ``current_user``), its pid in ``<lab>/service/SITE.pid`` and the
version it was last started with in ``SITE.version``: a "deploy" restarts one site with
another version. Faults: ``kill`` is SIGKILL (the process dies, connections are refused at
once); ``freeze`` is SIGSTOP (the process, and so its network path, hangs: the kernel still
accepts connections but nothing answers, as with a blackholed link or a hung host);
``thaw`` (SIGCONT) ends it.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.errors import LabError
from drdrill.executors.proctree import is_stopped
from drdrill.lab.osuser import OsUser
from drdrill.lab.process import alive, kill_tree, log_tail, read_pid, spawn

VERSION_N = "1.0.0"
VERSION_NEXT = "1.1.0"  # N+1: incompatible response field (amount_cents -> amount), app.py
VERSIONS = (VERSION_N, VERSION_NEXT)
SITE_NAMES = ("site-a", "site-b")  # site-a is the active site, site-b the standby
MODULE = "drdrill.lab.service"


@dataclass(frozen=True)
class SiteProc:
    """One site process of a lab (``service_dir`` is ``<lab>/service``)."""

    name: str
    port: int
    service_dir: Path
    lab_dir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.service_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.service_dir / f"{self.name}.log"

    @property
    def version_file(self) -> Path:
        return self.service_dir / f"{self.name}.version"

    @property
    def pid(self) -> int | None:
        return read_pid(self.pid_file, MODULE)

    @property
    def version(self) -> str | None:
        """The version it was last started with (kept while it is down)."""
        try:
            return self.version_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def state(self) -> str:
        """running | frozen (SIGSTOPped) | down."""
        pid = self.pid
        stopped = None if pid is None else is_stopped(pid)
        if stopped is None:
            return "down"
        return "frozen" if stopped else "running"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", MODULE, "--lab-dir", str(self.lab_dir), "serve",
                self.name]

    def start(self, version: str, user: OsUser, timeout: float = 15.0) -> bool:
        """Run this site with ``version`` (restart it if it runs another one); wait until its
        /health answers. True when something changed."""
        if self.state == "running" and self.version == version:
            return False
        self.stop()
        user.write_file(self.version_file, version + "\n", mode=0o644)
        pid = spawn(self.argv(), log_file=self.log_file, pid_file=self.pid_file, user=user,
                    cwd=self.service_dir, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_healthy(pid, timeout)
        return True

    def _wait_healthy(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status, _ = get_json(f"{self.url}/health", 1.0)
            if status == 200:
                return
            if not alive(pid):
                raise LabError(f"service {self.name} exited at start-up: "
                               f"{log_tail(self.log_file)}", hint=f"its log: {self.log_file}")
            if time.monotonic() > deadline:
                kill_tree(pid, timeout=2.0)
                raise LabError(f"service {self.name} not healthy on {self.url} within "
                               f"{timeout:.0f}s: {log_tail(self.log_file)}",
                               hint="is the lab's PostgreSQL up? drdrill lab status")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the site's process; False when it is not running."""
        pid = self.pid
        if pid is None:
            return False
        os.kill(pid, sig)
        return True

    def kill(self) -> bool:
        """SIGKILL, then wait until the process is gone (the port refuses at once)."""
        pid = self.pid
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return True

    def stop(self) -> bool:
        """Stop it (SIGCONT first, so a frozen site can act on SIGTERM)."""
        pid = self.pid
        if pid is None:
            return False
        self.signal(signal.SIGCONT)
        if not kill_tree(pid, timeout=5.0):
            raise LabError(f"service {self.name} (pid {pid}) did not stop")
        self.pid_file.unlink(missing_ok=True)
        return True

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "url": self.url, "pid": self.pid,
                "state": self.state, "version": self.version}


def current_user() -> OsUser:
    """The account the sites run as: the caller's own. Unlike PostgreSQL they may run as
    root, and they need drdrill's interpreter, which the lab's account may not reach."""
    entry = pwd.getpwuid(os.geteuid())
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, ())


def get_json(url: str, timeout: float) -> tuple[int | None, dict[str, Any]]:
    """(HTTP status, JSON body) of a GET; (None, {"error": ...}) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, {"error": str(exc)}
    try:
        data = json.loads(raw)
    except ValueError:
        return status, {}
    return status, data if isinstance(data, dict) else {}
