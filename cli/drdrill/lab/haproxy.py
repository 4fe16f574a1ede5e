"""One HAProxy of the lab, started from a configuration text (Patroni's and the service's).

The caller writes the ``frontend``/``backend`` sections; :func:`global_section` gives the
lab's ``global``/``defaults`` (log to stdout, so to the log file; no SO_REUSEPORT, so a second
haproxy on the same port fails instead of silently sharing it). HAProxy runs in the
foreground (``-db``) in its own session as the lab's account, detached from drdrill; its
files are ``<dir>/<name>.cfg``, ``.pid`` and ``.log``.

    proxy = Haproxy("patroni", lab_dir / "haproxy", port=58070)
    proxy.start(global_section() + FRONTEND_AND_BACKEND, user)
    proxy.stop()
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drdrill.errors import LabError
from drdrill.lab.osuser import OsUser
from drdrill.lab.ports import port_free, port_holder
from drdrill.lab.process import find_binary, kill_tree, log_tail, read_pid, spawn, wait_port

HAPROXY_HINT = ("install HAProxy: `apt-get install haproxy` (Debian package haproxy), or set "
                "DRDRILL_HAPROXY to the haproxy binary")


def find_haproxy() -> Path:
    return find_binary("DRDRILL_HAPROXY", "haproxy", "/usr/sbin/haproxy", HAPROXY_HINT)


def global_section(timeout_connect: str = "1s", timeout_client: str = "30m",
                   timeout_server: str = "30m") -> str:
    """The lab's ``global`` and ``defaults``: TCP mode, logs to stdout (our log file)."""
    return "\n".join([
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 200",
        "    noreuseport",
        "",
        "defaults",
        "    log global",
        "    mode tcp",
        "    option tcplog",
        "    retries 1",
        f"    timeout connect {timeout_connect}",
        f"    timeout client {timeout_client}",
        f"    timeout server {timeout_server}",
        "    timeout check 1s",
        "",
    ])


@dataclass(frozen=True)
class Haproxy:
    """One haproxy process; ``port`` is a frontend port that accepts once it is ready."""

    name: str
    run_dir: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def cfg_file(self) -> Path:
        return self.run_dir / f"{self.name}.cfg"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The running haproxy's pid (checked against /proc), else None."""
        return read_pid(self.pid_file, str(self.cfg_file))

    @property
    def running(self) -> bool:
        return self.pid is not None

    def start(self, cfg_text: str, user: OsUser, timeout: float = 10.0) -> int:
        """Write the config, check it (``haproxy -c``), start haproxy and wait until ``port``
        accepts. Already running: restarted with the new config. Returns its pid."""
        binary = find_haproxy()
        self.stop()
        if not port_free(self.host, self.port):
            holder = port_holder(self.port)
            raise LabError(f"port {self.port} on {self.host} (haproxy {self.name}) is already "
                           f"in use{f' by {holder}' if holder else ''}",
                           hint="choose another port, or stop what holds it")
        user.make_dir(self.run_dir, 0o755)
        user.write_file(self.cfg_file, cfg_text, mode=0o644)
        self._check(binary, user)
        pid = spawn([str(binary), "-db", "-f", str(self.cfg_file)], log_file=self.log_file,
                    pid_file=self.pid_file, user=user, cwd=self.run_dir)
        try:
            wait_port(self.host, self.port, pid, f"haproxy {self.name}", self.log_file, timeout)
        except LabError:
            kill_tree(pid, timeout=2.0)
            raise
        return pid

    def _check(self, binary: Path, user: OsUser) -> None:
        done = user.run([str(binary), "-c", "-f", str(self.cfg_file)], timeout=20,
                        check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            out = [line for line in lines if "[NOTICE]" not in line][-6:]
            raise LabError(f"haproxy {self.name}: invalid configuration {self.cfg_file}: "
                           + " | ".join(out))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop haproxy and anything it started; LabError if it survives SIGKILL."""
        pid = self.pid
        if pid is None:
            return
        if not kill_tree(pid, timeout=timeout):
            raise LabError(f"haproxy {self.name} (pid {pid}) did not stop: "
                           f"{log_tail(self.log_file)}")
        self.pid_file.unlink(missing_ok=True)

    def show(self, command: str, socket_path: Path) -> str:
        """Send a runtime API command to a ``stats socket`` the config declared (best effort:
        empty text when haproxy or the socket is not there)."""
        if not self.running or not socket_path.exists():
            return ""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2.0)
                sock.connect(str(socket_path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return ""
        return b"".join(chunks).decode(errors="replace")


def haproxy_version() -> str:
    """``2.6.12`` (for status lines and notes); empty when haproxy is missing."""
    try:
        out = subprocess.run([str(find_haproxy()), "-v"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (LabError, OSError, subprocess.SubprocessError):
        return ""
    parts = out.split()
    return parts[2] if len(parts) > 2 else ""
