"""Preflight: is every host of the runbook ready for the drill?

In parallel over the runbook's hosts (roles resolved through the inventory): reachable,
host key matches known_hosts, authenticates, clock offset against this orchestrator
(round-trip corrected), free disk on the data paths; then drift between the hosts of two
roles (a command whose output must be the same on both). Hosts with
``ansible_connection: local`` are checked locally (clock offset 0). Every result is emitted
as a ``preflight`` event; the connections opened stay warm in ``pool`` for the run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdrill.errors import BadInput
from drdrill.executors.hosts import LocalHost, RemoteHost, commands_for
from drdrill.executors.inventory import Inventory
from drdrill.executors.ssh import (
    CommandResult,
    HostKeyRejected,
    SshAuthFailed,
    SshError,
    SshPool,
    SshTimeouts,
    SshUnreachable,
)
from drdrill.runbook.durations import parse_duration
from drdrill.runbook.model import ProbeSpec, Runbook

Emit = Callable[[str, Mapping[str, Any]], object]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def parse_size(value: object) -> int:
    """Bytes for ``1GB`` (10^9), ``512MiB`` (2^20 × 512), or a bare number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size: write e.g. 1GB, 500MB or 2GiB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])


@dataclass(frozen=True)
class DriftCheck:
    """Run ``command`` (shell code) or ``argv`` on the hosts of both roles; outputs must match.
    ``{{ var }}`` is replaced by the host's inventory variable (shell-quoted in ``command``)."""

    name: str
    between: tuple[str, str]
    command: str | None = None
    argv: tuple[str, ...] = ()
    on_diff: str = "fail"  # fail | warn


@dataclass(frozen=True)
class PreflightSpec:
    drift: tuple[DriftCheck, ...] = ()
    max_clock_offset_s: float = 1.0
    min_free_disk_bytes: int = 10**9
    disk_paths: tuple[str, ...] = ()
    timeout_s: float = 10.0


def parse_preflight(raw: Mapping[str, Any] | None) -> PreflightSpec:
    """The runbook's ``preflight`` mapping (already schema-valid) as a PreflightSpec."""
    if not raw:
        return PreflightSpec()
    try:
        drift = []
        for i, item in enumerate(raw.get("drift") or [], start=1):
            if "settings" in item:
                continue  # compared through the database: engine/readiness.py
            between = tuple(str(r) for r in item["between"])
            if len(between) != 2:
                raise ValueError(f"drift #{i}: between needs exactly two roles")
            if ("command" in item) == ("argv" in item):
                raise ValueError(f"drift #{i}: give exactly one of command, argv")
            on_diff = str(item.get("severity", item.get("on_diff", "fail")))
            if on_diff not in ("fail", "warn"):
                raise ValueError(f"drift #{i}: on_diff must be fail or warn")
            drift.append(DriftCheck(
                name=str(item.get("name") or item.get("command") or shlex.join(item["argv"])),
                between=(between[0], between[1]),
                command=str(item["command"]) if "command" in item else None,
                argv=tuple(str(a) for a in item.get("argv", ())), on_diff=on_diff))
        defaults = PreflightSpec()
        return PreflightSpec(
            drift=tuple(drift),
            max_clock_offset_s=parse_duration(raw.get("max_clock_offset",
                                                      defaults.max_clock_offset_s)),
            min_free_disk_bytes=parse_size(raw.get("min_free_disk",
                                                   defaults.min_free_disk_bytes)),
            disk_paths=tuple(str(p) for p in raw.get("disk_paths") or ()),
            timeout_s=parse_duration(raw.get("timeout", defaults.timeout_s)))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"preflight: {exc}") from exc


@dataclass(frozen=True)
class CheckResult:
    host: str
    check: str
    ok: bool
    detail: str
    duration_s: float = 0.0
    warning: bool = False  # a difference the runbook only warns about (ok stays True)


@dataclass(frozen=True)
class PreflightReport:
    results: tuple[CheckResult, ...]
    clock_offsets: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def role_hosts(runbook: Runbook, inventory: Inventory, role: str) -> list[str]:
    return inventory.resolve(runbook.roles.get(role, role))


def runbook_hosts(runbook: Runbook, inventory: Inventory) -> list[str]:
    """Every host the runbook touches: its roles, the roles its steps name, ssh probes."""
    patterns = list(runbook.roles.values())
    patterns += [s.role for s in (*runbook.steps, *runbook.rollback) if s.role]
    hosts: list[str] = []
    for pattern in patterns:
        hosts += [h for h in inventory.resolve(runbook.roles.get(pattern, pattern))
                  if h not in hosts]
    probes: list[ProbeSpec] = list(runbook.probes.values())
    probes += [s.probe for s in (*runbook.steps, *runbook.rollback) if s.probe]
    if runbook.service:
        probes.append(runbook.service.probe)
    for spec in probes:
        host = spec.options.get("host") if spec.type == "ssh" else None
        if host and str(host) in inventory.host_vars and str(host) not in hosts:
            hosts.append(str(host))
    return hosts


def _spec_of(runbook: Runbook) -> PreflightSpec:
    raw = getattr(runbook, "preflight", None)  # the model may not carry it yet
    if isinstance(raw, PreflightSpec):
        return raw
    return parse_preflight(raw if isinstance(raw, Mapping) else None)


def _template(text: str, host_vars: Mapping[str, Any], quote: bool) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in host_vars:
            raise KeyError(name)
        value = str(host_vars[name])
        return shlex.quote(value) if quote else value
    return _VAR.sub(sub, text)


class _Preflight:
    def __init__(self, runbook: Runbook, inventory: Inventory, pool: SshPool, emit: Emit,
                 spec: PreflightSpec) -> None:
        self.runbook, self.inventory, self.pool, self.emit = runbook, inventory, pool, emit
        self.spec = spec
        self.results: list[CheckResult] = []
        self.offsets: dict[str, float] = {}
        self.drift_out: dict[tuple[str, str], CommandResult | str] = {}
        self.timeouts = SshTimeouts.uniform(min(spec.timeout_s, 10.0))

    def record(self, host: str, check: str, ok: bool, detail: str, started: float,
               warning: bool = False) -> None:
        result = CheckResult(host, check, ok, detail, round(time.monotonic() - started, 6),
                             warning)
        self.results.append(result)
        data: dict[str, Any] = {"host": host, "check": check, "ok": ok, "detail": detail,
                                "duration_s": result.duration_s}
        if warning:
            data["warning"] = True
        self.emit("preflight", data)

    def host(self, host: str) -> None:
        runner = commands_for(self.inventory, host, self.pool, self.timeouts)
        if isinstance(runner, RemoteHost) and not self.connect(runner):
            return
        if isinstance(runner, LocalHost):
            self.record(host, "connection", True, "local (ansible_connection: local)",
                        time.monotonic())
            self.offsets[host] = 0.0
        else:
            self.clock(runner)
        self.disk(runner)
        for check in self.spec.drift:
            if host in self.drift_hosts(check):
                self.drift_output(runner, check)

    def connect(self, runner: RemoteHost) -> bool:
        t, host = runner.target, runner.host
        start = time.monotonic()
        try:
            info = self.pool.connect(t, deadline=start + self.spec.timeout_s)
        except SshUnreachable as exc:
            self.record(host, "reachable", False, exc.message, start)
            return False
        except HostKeyRejected as exc:
            self.record(host, "reachable", True, f"{t.address}:{t.port}", start)
            self.record(host, "host_key", False, str(exc), start)
            return False
        except SshAuthFailed as exc:
            self.record(host, "reachable", True, f"{t.address}:{t.port}", start)
            self.record(host, "host_key", True, f"matches {t.known_hosts}", start)
            self.record(host, "authenticates", False, exc.message, start)
            return False
        except SshError as exc:
            self.record(host, "host_key", False, str(exc), start)
            return False
        tcp = f", tcp {info.tcp_s * 1000:.0f} ms" if info else " (connection already open)"
        self.record(host, "reachable", True, f"{t.address}:{t.port}{tcp}", start)
        self.record(host, "host_key", True, f"matches {t.known_hosts}", start)
        ssh = f", handshake {info.ssh_s * 1000:.0f} ms" if info else ""
        self.record(host, "authenticates", True, f"as {t.user}{ssh}", start)
        return True

    def clock(self, runner: RemoteHost) -> None:
        start = time.monotonic()
        try:
            sample = self.pool.clock_offset(runner.target, self.spec.timeout_s)
        except SshError as exc:
            self.record(runner.host, "clock", False, exc.message, start)
            return
        self.offsets[runner.host] = sample.offset_s
        ok = abs(sample.offset_s) <= self.spec.max_clock_offset_s
        self.record(runner.host, "clock", ok,
                    f"offset {sample.offset_s:+.3f}s (rtt {sample.rtt_s * 1000:.1f} ms, "
                    f"max {self.spec.max_clock_offset_s:g}s)", start)

    def disk(self, runner: LocalHost | RemoteHost) -> None:
        host_vars = self.inventory.vars_of(runner.host)
        paths = [str(host_vars["pg_data"])] if host_vars.get("pg_data") else []
        for raw in self.spec.disk_paths:
            try:
                path = _template(raw, host_vars, quote=False)
            except KeyError as exc:
                self.record(runner.host, f"disk {raw}", False,
                            f"host var {exc.args[0]!r} not set", time.monotonic())
                continue
            if path not in paths:
                paths.append(path)
        for path in paths:
            start = time.monotonic()
            free, error = self.free_bytes(runner, path)
            if free is None:
                self.record(runner.host, f"disk {path}", False, error, start)
                continue
            need = self.spec.min_free_disk_bytes
            self.record(runner.host, f"disk {path}", free >= need,
                        f"{free / 1e9:.2f} GB free (min {need / 1e9:.2f} GB)", start)

    def free_bytes(self, runner: LocalHost | RemoteHost, path: str) -> tuple[int | None, str]:
        # a data dir made by a step (an isolated clone's) is measured where it will be
        if isinstance(runner, LocalHost):
            try:
                return shutil.disk_usage(_existing(path)).free, ""
            except OSError as exc:
                return None, f"{path}: {exc.strerror}"
        try:
            done = runner.run(["df", "-Pk", "--", path], self.spec.timeout_s)
            if done.exit_code != 0 and path.rstrip("/").count("/") > 1:
                done = runner.run(["df", "-Pk", "--", path.rstrip("/").rsplit("/", 1)[0]],
                                  self.spec.timeout_s)
        except SshError as exc:
            return None, exc.message
        lines = done.stdout.strip().splitlines()
        if done.exit_code != 0 or len(lines) < 2:
            return None, f"df failed (exit {done.exit_code}): {done.stdout.strip()[-160:]}"
        return int(lines[-1].split()[3]) * 1024, ""

    def drift_hosts(self, check: DriftCheck) -> list[str]:
        hosts: list[str] = []
        for role in check.between:
            hosts += [h for h in role_hosts(self.runbook, self.inventory, role)
                      if h not in hosts]
        return hosts

    def drift_output(self, runner: LocalHost | RemoteHost, check: DriftCheck) -> None:
        host_vars = self.inventory.vars_of(runner.host)
        try:
            if check.command is not None:
                command = _template(check.command, host_vars, quote=True)
                out: CommandResult | str = runner.run_shell(command, self.spec.timeout_s)
            else:
                argv = [_template(a, host_vars, quote=False) for a in check.argv]
                out = runner.run(argv, self.spec.timeout_s)
        except KeyError as exc:
            out = f"host var {exc.args[0]!r} not set on {runner.host}"
        except SshError as exc:
            out = exc.message
        self.drift_out[(check.name, runner.host)] = out

    def compare(self, check: DriftCheck) -> None:
        start = time.monotonic()
        name = f"drift {check.name}"
        groups = [role_hosts(self.runbook, self.inventory, r) for r in check.between]
        for role, members in zip(check.between, groups, strict=True):
            if not members:
                self.record("-", name, False, f"role {role!r} matches no host", start)
                return
        reference, *others = [h for members in groups for h in members]
        ref = self.drift_out.get((check.name, reference), f"{reference} was not reachable")
        for host in others:
            out = self.drift_out.get((check.name, host), f"{host} was not reachable")
            if isinstance(ref, str) or isinstance(out, str):
                self.record(host, name, False, ref if isinstance(ref, str) else str(out), start)
                continue
            if (ref.exit_code, ref.stdout.strip()) == (out.exit_code, out.stdout.strip()):
                self.record(host, name, True, f"same as {reference}", start)
                continue
            detail = f"differs from {reference}: {_first_difference(ref, out)}"
            warn = check.on_diff == "warn"
            self.record(host, name, warn, detail, start, warning=warn)


def _first_difference(a: CommandResult, b: CommandResult) -> str:
    if a.exit_code != b.exit_code:
        return f"exit {a.exit_code} vs {b.exit_code}"
    left, right = a.stdout.strip().splitlines(), b.stdout.strip().splitlines()
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else "<missing>"
        y = right[i] if i < len(right) else "<missing>"
        if x != y:
            return f"line {i + 1}: {x[:80]!r} vs {y[:80]!r}"
    return "outputs differ"


def run_preflight(runbook: Runbook, inventory: Inventory, pool: SshPool, emit: Emit,
                  spec: PreflightSpec | None = None,
                  hosts: Iterable[str] | None = None) -> PreflightReport:
    """Check every host in parallel (each bounded by ``spec.timeout_s`` per operation),
    then compare drift. Never raises for a failed check: failures are results."""
    preflight = _Preflight(runbook, inventory, pool, emit, spec or _spec_of(runbook))
    targets = list(hosts) if hosts is not None else runbook_hosts(runbook, inventory)
    if not targets:
        raise BadInput(f"runbook {runbook.name!r}: no inventory host matches its roles",
                       hint=f"roles: {dict(runbook.roles)}; hosts: {list(inventory.hosts)}")
    with ThreadPoolExecutor(max_workers=min(32, len(targets)),
                            thread_name_prefix="preflight") as workers:
        for future in [workers.submit(preflight.host, h) for h in targets]:
            future.result()
    for check in preflight.spec.drift:
        preflight.compare(check)
    return PreflightReport(tuple(preflight.results), dict(preflight.offsets))


def _existing(path: str) -> Path:
    """``path``, or its nearest existing parent (the filesystem it would be created on)."""
    at = Path(path)
    while not at.exists() and at != at.parent:
        at = at.parent
    return at
