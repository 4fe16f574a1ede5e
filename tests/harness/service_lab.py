"""The lab with its transfer service (``lab up --with service``) for the site-failover and
upgrade-rollback tests: set up on a module's own ports in a temporary directory, the shipped
runbooks run as shipped with inventory.example.yml, and helpers that put drdrill's journal
on the wall clock of the independent HTTP client (tests/harness/http_client.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drdrill.lab import LabConfig, lab_down, lab_up
from drdrill.lab.service.lab import ServicePorts, service_status, service_up

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = ROOT / ".venv" / "bin" / "drdrill"


def skip_without_haproxy() -> None:
    if not (shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK)):
        pytest.skip("haproxy is not installed (Debian package haproxy; CI installs it)",
                    allow_module_level=True)


def wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ports_free(ports: Sequence[int]) -> list[int]:
    """The ports of ``ports`` that something already listens on."""
    busy = []
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


@dataclass(frozen=True)
class ServiceLab:
    config: LabConfig
    base: Path

    @property
    def runs(self) -> Path:
        return self.base / "runs"

    @property
    def env(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.config.env_file.read_text())
        return data

    @property
    def url(self) -> str:
        return str(self.env["service"]["url"])

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DRDRILL_LAB_DIR": str(self.config.lab_dir),
               "DRDRILL_LOCK_DIR": str(self.base / "locks"),
               "DRDRILL_RUNS_DIR": str(self.runs)}
        return subprocess.run([str(DRDRILL), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT, check=False)

    def run(self, runbook: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                     dict[str, Any], list[dict[str, Any]]]:
        """``drdrill run RUNBOOK -i inventory.example.yml --yes`` as a user runs it; the
        result, the record and the journal's events."""
        done = self.cli("run", str(runbook), "-i", str(ROOT / "inventory.example.yml"),
                        "--yes", *extra, timeout=300)
        runs = sorted(self.runs.iterdir(), key=lambda p: p.stat().st_mtime)
        run_dir = runs[-1]
        record = json.loads((run_dir / "record.json").read_text())
        events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text()
                  .splitlines() if line.strip()]
        return done, record, events

    def site_versions(self) -> dict[str, str | None]:
        status = service_status(self.config)
        assert status is not None
        return {s.name: s.version for s in status.sites}


@contextlib.contextmanager
def service_lab(prefix: str, pg_ports: tuple[int, int], ports: ServicePorts,
                via_cli: bool = False) -> Iterator[ServiceLab]:
    """A lab with the service on the given ports; torn down (and purged) at the end."""
    busy = ports_free([*pg_ports, ports.haproxy, ports.site_a, ports.site_b])
    if busy:
        pytest.fail(f"ports {busy} are taken; {prefix} needs them free")
    base = Path(tempfile.mkdtemp(prefix=f"drdrill-{prefix}-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", *pg_ports)
    lab = ServiceLab(config, base)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRDRILL_LAB_DIR", str(config.lab_dir))  # read by inventory.example.yml
        mp.setenv("DRDRILL_LOCK_DIR", str(base / "locks"))
        mp.setenv("DRDRILL_RUNS_DIR", str(lab.runs))
        try:
            if via_cli:
                assert ports.site_a == ports.haproxy + 1 and ports.site_b == ports.haproxy + 2
                done = lab.cli("lab", "up", "--primary-port", str(pg_ports[0]),
                               "--standby-port", str(pg_ports[1]), "--with", "service",
                               "--service-port", str(ports.haproxy))
                assert done.returncode == 0, done.stdout + done.stderr
            else:
                assert lab_up(config).healthy
                assert service_up(config, ports).healthy
            yield lab
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def leftovers(lab_dir: Path) -> list[str]:
    """Processes (haproxy, service sites, postgres) that still name the lab's directory."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        line = raw.replace(b"\0", b" ").decode(errors="replace")
        if str(lab_dir) in line and int(pid) != os.getpid():
            found.append(f"{pid}: {line[:160]}")
    return found


def on_wall(events: list[dict[str, Any]], mono: float | None) -> float | None:
    """A journal offset (``mono``) as a wall-clock instant, from the journal's own stamps."""
    if mono is None:
        return None
    origin = wall(events[0]["wall"]) - float(events[0]["mono"])
    return origin + mono
