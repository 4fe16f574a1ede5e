"""Several SSH hosts on one machine: network namespaces joined by veth pairs (root only).

Each host is a network namespace ``drd-<pid>-<host>`` with one veth pair: ``10.O.i.1/24`` on
the root side, ``10.O.i.2/24`` (``eth0``) inside, where ``O`` is a second octet free on this
machine (allocated under a lock, 213 preferred) and ``i`` the host's 1-based index. Inside,
``lo`` is up and the only route is ``10.O.0.0/16`` via the root side, so a namespace can
reach the other namespaces (forwarding is switched on for these veths only) and nothing
else. In the root namespace ``unreachable 10.O.0.0/16`` guards the whole test subnet for the
harness's lifetime: with a host's veth down its traffic fails at once ("No route to host")
instead of following the default route out of the machine (FIELD-NOTES.md).

Each namespace runs ``/usr/sbin/sshd -D`` with a generated ed25519 host key, listening on
the namespace address only, root login by key only, and an AuthorizedKeysFile generated for
this session. ``known_hosts``, the client key and an Ansible inventory (host-key checking
on) are written into the session directory.

Only addresses inside ``10.O.0.0/16`` (the harness's own namespaces) are ever contacted.
Tear-down kills every process in each namespace and every process whose command line names
the session directory (ssh clients, ControlPersist masters), deletes the namespaces and
veths, removes the guard route and the session directory: ``leftovers()`` is then empty.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SSHD = "/usr/sbin/sshd"
LOCK_FILE = "/run/lock/drdrill-netns.lock"
PREFERRED_OCTETS = (213, *range(200, 213), *range(214, 250))
BOGUS_MAC = "02:00:5e:00:53:01"


def missing_requirements() -> str | None:
    """Why the harness cannot run here (None when it can): root, ip, sshd, ssh-keygen."""
    if os.geteuid() != 0:
        return "needs root: network namespaces and sshd (run the suite as root, as CI does)"
    for tool in ("ip", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"needs {tool!r} on PATH"
    if not os.access(SSHD, os.X_OK):
        return f"needs {SSHD} (apt-get install -y openssh-server)"
    return None


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _write_sysctl(path: str, value: str) -> None:
    Path(path).write_text(value + "\n")


@dataclass
class NsHost:
    """One namespace "host"; ``address`` is where its sshd (and anything else) listens."""

    name: str
    index: int
    netns: str
    veth: str
    gateway: str
    address: str
    dir: Path
    host_public_key: str = ""
    sshd: subprocess.Popen[bytes] | None = None
    stopped_pids: list[int] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """SHA256 fingerprint of the host key, as OpenSSH prints it."""
        out = _run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                    str(self.dir / "ssh_host_ed25519_key.pub")]).stdout
        return out.split()[1]


class NetnsHarness:
    """``with NetnsHarness(["db1", "db2"], groups={"primary": ["db1"]}) as h: ...``"""

    def __init__(self, hosts: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None,
                 host_vars: Mapping[str, Mapping[str, Any]] | None = None,
                 base_dir: Path | None = None) -> None:
        reason = missing_requirements()
        if reason:
            raise RuntimeError(reason)
        if not hosts or len(hosts) > 250:
            raise ValueError("between 1 and 250 hosts")
        for name in hosts:
            if not name.replace("-", "").isalnum() or len(name) > 20:
                raise ValueError(f"host name {name!r}: letters, digits and '-' only, ≤ 20")
        self.host_names = tuple(hosts)
        self.groups = {g: tuple(m) for g, m in (groups or {}).items()}
        self.host_vars = {h: dict(v) for h, v in (host_vars or {}).items()}
        self.prefix = f"drd-{os.getpid()}-"
        self._base_dir = base_dir
        self.octet = 0
        self.dir = Path()
        self.hosts: dict[str, NsHost] = {}
        self._guard = False

    # ---------------------------------------------------------------- addresses, files
    @property
    def subnet(self) -> str:
        return f"10.{self.octet}.0.0/16"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    def host(self, name: str) -> NsHost:
        return self.hosts[name]

    def address(self, name: str) -> str:
        return self.hosts[name].address

    # ---------------------------------------------------------------- life cycle
    def __enter__(self) -> NetnsHarness:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> NetnsHarness:
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self._base_dir))
            (self.dir / "cp").mkdir(mode=0o700)
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep dir
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drdrill-test-client",
                  "-f", str(self.client_key)])
            (self.dir / "authorized_keys").write_text(
                (self.dir / "id_ed25519.pub").read_text())
            self._allocate_subnet()
            for i, name in enumerate(self.host_names, start=1):
                self._add_host(name, i)
            self.known_hosts.write_text("".join(
                f"{h.address} {h.host_public_key}\n" for h in self.hosts.values()))
            for h in self.hosts.values():
                self._start_sshd(h)
            self.write_inventory()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Undo everything ``up`` did, whatever state it reached; never raises."""
        for h in self.hosts.values():
            self._kill_namespace_processes(h)
        self._kill_session_processes()
        for h in self.hosts.values():
            _run(["ip", "netns", "del", h.netns], check=False)
            if Path(f"/sys/class/net/{h.veth}").exists():
                _run(["ip", "link", "del", h.veth], check=False)
        if self._guard:
            _run(["ip", "route", "del", "unreachable", self.subnet], check=False)
            self._guard = False
        if self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Everything of this harness still present (empty after ``down``)."""
        found: list[str] = []
        netns = _run(["ip", "netns", "list"], check=False).stdout.split()
        found += [f"netns {n}" for n in netns if n.startswith(self.prefix)]
        found += [f"link {h.veth}" for h in self.hosts.values()
                  if Path(f"/sys/class/net/{h.veth}").exists()]
        if self.octet:
            routes = _run(["ip", "-j", "route", "show", "root", self.subnet], check=False)
            found += [f"route {r.get('type', '')} {r['dst']}"
                      for r in json.loads(routes.stdout or "[]")]
        found += [f"process {pid}" for pid in self._session_pids()]
        found += [f"process {h.sshd.pid} (sshd of {h.name})" for h in self.hosts.values()
                  if h.sshd is not None and _alive(h.sshd.pid)]
        if self.dir != Path() and self.dir.exists():
            found.append(f"directory {self.dir}")
        return found

    # ---------------------------------------------------------------- set-up pieces
    def _allocate_subnet(self) -> None:
        Path(LOCK_FILE).parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for octet in PREFERRED_OCTETS:
                taken = _run(["ip", "-j", "route", "show", "root", f"10.{octet}.0.0/16"])
                addrs = _run(["ip", "-j", "-4", "addr", "show", "to", f"10.{octet}.0.0/16"])
                if json.loads(taken.stdout or "[]") or json.loads(addrs.stdout or "[]"):
                    continue
                self.octet = octet
                _run(["ip", "route", "add", "unreachable", self.subnet])
                self._guard = True
                return
        raise RuntimeError("no free 10.x.0.0/16 for the test subnet")

    def _add_host(self, name: str, i: int) -> None:
        h = NsHost(name=name, index=i, netns=f"{self.prefix}{name}",
                   veth=f"drd{self.octet}h{i}", gateway=f"10.{self.octet}.{i}.1",
                   address=f"10.{self.octet}.{i}.2", dir=self.dir / name)
        self.hosts[name] = h
        h.dir.mkdir(mode=0o700)
        _run(["ip", "netns", "add", h.netns])
        _run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0",
              "netns", h.netns])
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{h.veth}/disable_ipv6", "1")
        _run(["ip", "addr", "add", f"{h.gateway}/24", "dev", h.veth])
        _run(["ip", "link", "set", h.veth, "up"])
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{h.veth}/forwarding", "1")
        _run(["ip", "-n", h.netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", h.netns, "addr", "add", f"{h.address}/24", "dev", "eth0"])
        _run(["ip", "-n", h.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", h.netns, "route", "add", self.subnet, "via", h.gateway])
        key = h.dir / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-host", "-f",
              str(key)])
        h.host_public_key = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        (h.dir / "sshd_config").write_text(
            f"ListenAddress {h.address}:22\n"
            f"HostKey {key}\n"
            f"PidFile {h.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            # the harness's files sit in a 0700 root directory under /tmp (1777), which
            # StrictModes would reject because of /tmp's mode
            "StrictModes no\n"
            "PrintMotd no\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 50\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel INFO\n")

    def _start_sshd(self, h: NsHost) -> None:
        log = open(h.dir / "sshd.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            # `ip netns exec` execs sshd in place, so the Popen pid is sshd's own
            h.sshd = subprocess.Popen(
                ["ip", "netns", "exec", h.netns, SSHD, "-D", "-e", "-f",
                 str(h.dir / "sshd_config")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if h.sshd.poll() is not None:
                raise RuntimeError(f"sshd of {h.name} exited: {self.sshd_log(h.name)}")
            try:
                with socket.create_connection((h.address, 22), timeout=0.5) as sock:
                    sock.settimeout(2)
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd of {h.name} not answering: {self.sshd_log(h.name)}")

    def sshd_log(self, name: str) -> str:
        path = self.hosts[name].dir / "sshd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    # ---------------------------------------------------------------- processes
    def ns_pids(self, name: str) -> list[int]:
        out = _run(["ip", "netns", "pids", self.hosts[name].netns], check=False).stdout
        return [int(p) for p in out.split()]

    def ns_exec(self, name: str, argv: Sequence[str], user: str | None = None,
                timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside host ``name``'s namespace (as ``user`` via runuser)."""
        prefix = ["ip", "netns", "exec", self.hosts[name].netns]
        if user:
            prefix += ["runuser", "-u", user, "--"]
        proc = subprocess.run(prefix + list(argv), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{name}: {' '.join(argv)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def _kill_namespace_processes(self, h: NsHost) -> None:
        if h.sshd is not None and h.sshd.poll() is None:
            h.sshd.kill()
        deadline = time.monotonic() + 10
        while True:
            pids = self.ns_pids(h.name) if h.name in self.hosts else []
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            if h.sshd is not None:
                with suppress(subprocess.TimeoutExpired):
                    h.sshd.wait(timeout=0.05)
            if not pids or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _session_pids(self) -> list[int]:
        """Processes (other than ours) whose command line names the session directory."""
        if self.dir == Path():
            return []
        needle = str(self.dir).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                found.append(int(entry))
        return found

    def _kill_session_processes(self) -> None:
        for _ in range(50):
            pids = self._session_pids()
            if not pids:
                return
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.02)

    # ---------------------------------------------------------------- faults
    def partition(self, name: str) -> None:
        """Sudden loss of the host's network: its veth goes down (guard: fails fast)."""
        _run(["ip", "link", "set", self.hosts[name].veth, "down"])

    def heal(self, name: str) -> None:
        h = self.hosts[name]
        _run(["ip", "link", "set", h.veth, "up"])
        _run(["ip", "-n", h.netns, "route", "replace", self.subnet, "via", h.gateway])

    def blackhole(self, name: str) -> None:
        """Silent loss: packets to the host go to a MAC nobody has (timeouts, not errors)."""
        h = self.hosts[name]
        _run(["ip", "neigh", "replace", h.address, "lladdr", BOGUS_MAC, "dev", h.veth,
              "nud", "permanent"])

    def unblackhole(self, name: str) -> None:
        h = self.hosts[name]
        _run(["ip", "neigh", "del", h.address, "dev", h.veth], check=False)

    def hang(self, name: str) -> None:
        """A hung host: SIGSTOP every sshd of the namespace (listener and sessions)."""
        h = self.hosts[name]
        for pid in self.ns_pids(name):
            if _comm(pid) == "sshd" and _signal(pid, signal.SIGSTOP):
                h.stopped_pids.append(pid)

    def unhang(self, name: str) -> None:
        h = self.hosts[name]
        for pid in h.stopped_pids:
            _signal(pid, signal.SIGCONT)
        h.stopped_pids.clear()

    def stop_sshd(self, name: str) -> None:
        """sshd gone (connection refused); sessions already open keep running."""
        h = self.hosts[name]
        if h.sshd is not None and h.sshd.poll() is None:
            h.sshd.terminate()
            h.sshd.wait(timeout=10)

    def start_sshd(self, name: str) -> None:
        self._start_sshd(self.hosts[name])

    # ---------------------------------------------------------------- inventory
    def inventory_data(self, known_hosts: Path | None = None,
                       extra_vars: Mapping[str, Mapping[str, Any]] | None = None,
                       control_persist: bool = True) -> dict[str, Any]:
        """An Ansible inventory for the hosts: key auth as root, host-key checking on."""
        common = [f"-o UserKnownHostsFile={known_hosts or self.known_hosts}",
                  "-o StrictHostKeyChecking=yes",
                  "-o ServerAliveInterval=1 -o ServerAliveCountMax=3"]
        if control_persist:  # keep masters in the session dir so tear-down finds them
            common.append(f"-o ControlPath={self.dir / 'cp'}/%C")
        else:
            common.append("-o ControlMaster=no -o ControlPath=none")
        connection = {"ansible_user": "root",
                      "ansible_port": 22,
                      "ansible_ssh_private_key_file": str(self.client_key),
                      "ansible_ssh_common_args": " ".join(common),
                      "ansible_python_interpreter": "/usr/bin/python3"}
        hosts: dict[str, Any] = {}
        for name, h in self.hosts.items():
            # connection vars on each host (not under all.vars): every reader sees them
            hv: dict[str, Any] = {"ansible_host": h.address, **connection}
            hv.update(self.host_vars.get(name, {}))
            hv.update((extra_vars or {}).get(name, {}))
            hosts[name] = hv
        return {"all": {
            "hosts": hosts,
            "children": {g: {"hosts": {m: None for m in members}}
                         for g, members in self.groups.items()},
        }}

    def write_inventory(self, path: Path | None = None, **kwargs: Any) -> Path:
        path = path or self.inventory_path
        path.write_text(yaml.safe_dump(self.inventory_data(**kwargs), sort_keys=False))
        return path


@contextmanager
def netns_hosts(hosts: Sequence[str], **kwargs: Any) -> Iterator[NetnsHarness]:
    with NetnsHarness(hosts, **kwargs) as harness:
        yield harness


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
