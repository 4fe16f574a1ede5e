"""A one-node etcd for the Patroni lab: Patroni's consensus store (its leader key lives here).

Debian's ``etcd-server`` (or an ``etcd`` binary on PATH, or ``$DRDRILL_ETCD``), run in the
foreground in its own session as the lab's account, v3 API only (Patroni's ``etcd3``), on
loopback client/peer ports of the lab's choosing; data in ``<dir>/data``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import LabError
from drdrill.lab.osuser import OsUser
from drdrill.lab.ports import port_free, port_holder
from drdrill.lab.process import find_binary, kill_tree, log_tail, read_pid, spawn, wait_port

ETCD_HINT = ("install etcd: `apt-get install etcd-server` (Debian package etcd-server), or set "
             "DRDRILL_ETCD to an etcd binary (v3.4 or later)")


def find_etcd() -> Path:
    return find_binary("DRDRILL_ETCD", "etcd", "/usr/bin/etcd", ETCD_HINT)


@dataclass(frozen=True)
class Etcd:
    run_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    name: str = "drdrill-lab"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "etcd.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "etcd.log"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return read_pid(self.pid_file, str(self.data_dir))

    def argv(self, binary: Path) -> list[str]:
        peer = f"http://{self.host}:{self.peer_port}"
        return [str(binary), "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}",
                "--initial-cluster-state", "new", "--enable-v2=false",
                "--heartbeat-interval", "100", "--election-timeout", "1000"]

    def start(self, user: OsUser, timeout: float = 20.0) -> int:
        """Start etcd (no-op when running) and wait until it answers /health."""
        running = self.pid
        if running is not None:
            return running
        binary = find_etcd()
        for port in (self.client_port, self.peer_port):
            if not port_free(self.host, port):
                holder = port_holder(port)
                raise LabError(f"port {port} on {self.host} (lab etcd) is already in use"
                               f"{f' by {holder}' if holder else ''}",
                               hint="choose other Patroni lab ports (drdrill lab up --help)")
        user.make_dir(self.run_dir, 0o755)
        user.make_dir(self.data_dir, 0o700)
        pid = spawn(self.argv(binary), log_file=self.log_file, pid_file=self.pid_file,
                    user=user, cwd=self.run_dir)
        try:
            wait_port(self.host, self.client_port, pid, "etcd", self.log_file, timeout)
            self._wait_healthy(timeout)
        except LabError:
            kill_tree(pid, timeout=2.0)
            raise
        return pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") in (True, "true"))
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise LabError(f"etcd did not report healthy within {timeout:.0f}s: "
                               f"{log_tail(self.log_file)}", hint=f"its log: {self.log_file}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.pid
        if pid is None:
            return
        if not kill_tree(pid, timeout=timeout):
            raise LabError(f"etcd (pid {pid}) did not stop")
        self.pid_file.unlink(missing_ok=True)
