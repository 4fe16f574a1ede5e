"""Database readiness for ``drdrill preflight``: does what the drill needs actually hold?

Through the runbook's own PostgreSQL endpoints (the service probe's DSN, resolved from the
inventory), each endpoint of a multi-host DSN on its own: it answers, and as what (primary or
standby); exactly one is writable; every standby is streaming with its replay lag under the
runbook's ``max_lag_bytes``; and the settings the runbook declares under ``preflight.drift``
(``settings: [...]``, ``severity: fail|warn``) are the same on each standby as on the
primary — PostgreSQL refuses to run a hot standby whose max_connections, max_wal_senders,
max_worker_processes, max_prepared_transactions or max_locks_per_transaction are lower than
the primary's, which turns a failover into an outage. Each result names the check, the
endpoint (with its inventory host when pg_host/pg_port match) and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drdrill.engine.preflight import CheckResult, runbook_hosts
from drdrill.executors.inventory import Inventory
from drdrill.runbook.durations import parse_duration
from drdrill.runbook.model import Runbook

CONNECT_TIMEOUT_S = 3
_REPAIR = "start it (the lab: drdrill lab status, drdrill lab repair) or fix the DSN"


@dataclass(frozen=True)
class Endpoint:
    """One host:port of a (multi-host) libpq DSN; ``name`` is the inventory host whose
    pg_host/pg_port it is, if any."""

    address: str
    port: int
    dsn: str
    name: str = ""

    @property
    def label(self) -> str:
        where = f"{self.address}:{self.port}"
        return f"{self.name} ({where})" if self.name else where


@dataclass(frozen=True)
class SettingsCheck:
    name: str
    settings: tuple[str, ...]
    severity: str = "fail"  # fail | warn


@dataclass
class _Node:
    endpoint: Endpoint
    in_recovery: bool


def settings_checks(raw: Mapping[str, Any]) -> tuple[SettingsCheck, ...]:
    """The ``preflight.drift`` items that compare PostgreSQL settings (schema-valid data)."""
    out = []
    for item in raw.get("drift") or []:
        if isinstance(item, Mapping) and "settings" in item:
            names = tuple(str(s) for s in item["settings"])
            out.append(SettingsCheck(str(item.get("name") or "settings " + ",".join(names)),
                                     names, str(item.get("severity",
                                                         item.get("on_diff", "fail")))))
    return tuple(out)


def endpoints_of(dsn: str, inventory: Inventory, hosts: list[str]) -> list[Endpoint]:
    """Each host:port of ``dsn`` as a single-endpoint DSN (any role, short timeout)."""
    params = conninfo_to_dict(dsn)
    addresses = str(params.get("hostaddr") or params.get("host") or "localhost").split(",")
    ports = str(params.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(addresses)
    names = {(str(inventory.vars_of(h).get("pg_host", "")),
              str(inventory.vars_of(h).get("pg_port", ""))): h for h in hosts}
    key = "hostaddr" if params.get("hostaddr") else "host"
    out = []
    for address, port in zip(addresses, ports, strict=False):
        single = make_conninfo(dsn, **{key: address}, port=port,
                               target_session_attrs="any",
                               connect_timeout=str(CONNECT_TIMEOUT_S))
        if key == "hostaddr" and params.get("host"):
            single = make_conninfo(single, host=address)
        out.append(Endpoint(address, int(port or 5432), single,
                            names.get((address, port), "")))
    return out


def _service_dsn(runbook: Runbook) -> str | None:
    for spec in (runbook.service.probe if runbook.service else None, runbook.canary):
        if spec is not None and spec.type == "postgres" and "dsn" in spec.options:
            return str(spec.options["dsn"])
    return None


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _Readiness:
    def __init__(self, runbook: Runbook, inventory: Inventory,
                 variables: Mapping[str, Any]) -> None:
        self.runbook, self.inventory, self.variables = runbook, inventory, variables
        self.results: list[CheckResult] = []
        raw = runbook.preflight.get("max_clock_offset", 1.0)
        self.max_clock_offset_s = parse_duration(raw) if raw is not None else 1.0

    def record(self, who: str, check: str, ok: bool, detail: str, started: float,
               warning: bool = False) -> None:
        self.results.append(CheckResult(who, check, ok, detail,
                                        round(time.monotonic() - started, 6), warning))

    def query(self, endpoint: Endpoint, sql: str, params: tuple[Any, ...] = ()
              ) -> list[tuple[Any, ...]]:
        with psycopg.connect(endpoint.dsn, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def answer(self, endpoint: Endpoint) -> _Node | None:
        start = time.monotonic()
        try:
            ((recovery, version),) = self.query(
                endpoint, "select pg_is_in_recovery(), current_setting('server_version')")
        except psycopg.Error as exc:
            # an endpoint no inventory host names may be one the runbook starts itself
            # (postgres-restore.yml's restored instance): reported, not failed
            optional = not endpoint.name
            hint = ("not an inventory host's pg_host:pg_port — fine if the runbook starts it"
                    if optional else _REPAIR)
            self.record(endpoint.label, "endpoint answers", optional,
                        f"does not answer: {_first_line(exc)} — {hint}", start,
                        warning=optional)
            return None
        role = "standby (in recovery)" if recovery else "primary (writable)"
        self.record(endpoint.label, "endpoint answers", True,
                    f"PostgreSQL {version}, {role}", start)
        self.clock(endpoint)
        return _Node(endpoint, bool(recovery))

    def clock(self, endpoint: Endpoint) -> None:
        """The database host's clock against ours, corrected by half the round trip: the
        server's timestamps (commit times, logs) are compared with drdrill's."""
        start = time.monotonic()
        try:
            with psycopg.connect(endpoint.dsn, autocommit=True) as conn:
                before = time.time()
                row = conn.execute("select extract(epoch from clock_timestamp())::float8"
                                   ).fetchone()
                after = time.time()
        except psycopg.Error as exc:
            self.record(endpoint.label, "clock", False, f"cannot read: {_first_line(exc)}",
                        start)
            return
        offset = float(row[0] if row else 0.0) - (before + after) / 2
        limit = self.max_clock_offset_s
        self.record(endpoint.label, "clock", abs(offset) <= limit,
                    f"offset {offset:+.3f}s (rtt {(after - before) * 1000:.1f} ms, max "
                    f"{limit:g}s){'' if abs(offset) <= limit else ' — fix NTP on that host'}",
                    start)

    def writable(self, nodes: list[_Node], dsn_label: str) -> _Node | None:
        start = time.monotonic()
        primaries = [n for n in nodes if not n.in_recovery]
        if len(primaries) == 1:
            self.record(primaries[0].endpoint.label, "one writable node", True,
                        f"the only writable endpoint of {dsn_label}", start)
            return primaries[0]
        if not primaries:
            self.record(dsn_label, "one writable node", False,
                        "no endpoint accepts writes — the service is down: bring the primary "
                        "back (the lab: drdrill lab repair) before a drill", start)
        else:
            names = ", ".join(n.endpoint.label for n in primaries)
            self.record(dsn_label, "one writable node", False,
                        f"{len(primaries)} writable endpoints ({names}): split brain — fence "
                        "all but one before a drill", start)
        return None

    def replication(self, primary: _Node, standby: _Node) -> None:
        start = time.monotonic()
        bound = self.variables.get("max_lag_bytes")
        limit = int(bound) if isinstance(bound, int | str) and str(bound).isdigit() else None
        try:
            ((current,),) = self.query(primary.endpoint, "select pg_current_wal_lsn()::text")
            rows = self.query(standby.endpoint,
                              "select status, pg_wal_lsn_diff(%s::pg_lsn,"
                              " pg_last_wal_replay_lsn())::bigint from pg_stat_wal_receiver"
                              " right join (select 1) one on true", (current,))
        except psycopg.Error as exc:
            self.record(standby.endpoint.label, "replication streaming", False,
                        f"cannot read replication state: {_first_line(exc)} — {_REPAIR}",
                        start)
            return
        status, lag = rows[0] if rows else (None, None)
        if status != "streaming":
            self.record(standby.endpoint.label, "replication streaming", False,
                        f"WAL receiver is {status or 'not running'}: the standby is not "
                        f"replicating from {primary.endpoint.label} — check its "
                        "primary_conninfo and both logs (the lab: drdrill lab repair)", start)
            return
        lag_b = max(int(lag or 0), 0)
        within = limit is None or lag_b <= limit
        bound_text = f"max_lag_bytes {limit}" if limit is not None else "no max_lag_bytes set"
        detail = f"streaming from {primary.endpoint.label}, replay lag {lag_b} B ({bound_text})"
        if not within:
            detail += " — wait for the standby to catch up, or find what slows its replay"
        self.record(standby.endpoint.label, "replication streaming", within, detail, start)

    def settings(self, primary: _Node, standby: _Node, check: SettingsCheck) -> None:
        start = time.monotonic()
        sql = ("select name, current_setting(name) from pg_settings where name = any(%s)"
               " order by name")
        try:
            ref = dict(self.query(primary.endpoint, sql, (list(check.settings),)))
            got = dict(self.query(standby.endpoint, sql, (list(check.settings),)))
        except psycopg.Error as exc:
            self.record(standby.endpoint.label, f"drift {check.name}", False,
                        f"cannot read settings: {_first_line(exc)}", start)
            return
        unknown = [s for s in check.settings if s not in ref]
        if unknown:
            self.record(standby.endpoint.label, f"drift {check.name}", False,
                        f"unknown setting(s) {', '.join(unknown)} — fix the runbook's "
                        "preflight.drift", start)
            return
        diffs = [f"{s} = {got.get(s)} here, {ref[s]} on {primary.endpoint.label}"
                 for s in check.settings if got.get(s) != ref[s]]
        if not diffs:
            self.record(standby.endpoint.label, f"drift {check.name}", True,
                        f"{len(check.settings)} settings as on {primary.endpoint.label}", start)
            return
        warn = check.severity == "warn"
        self.record(standby.endpoint.label, f"drift {check.name}", warn,
                    "; ".join(diffs) + " — make them equal (ALTER SYSTEM SET ..., then reload"
                    " or restart) before the standby has to take over", start, warning=warn)


def check_database(runbook: Runbook, inventory: Inventory,
                   variables: Mapping[str, Any]) -> list[CheckResult]:
    """The database checks for a runbook whose service is PostgreSQL (else none).
    ``variables`` are the runbook's vars with -e applied (``max_lag_bytes``)."""
    dsn = _service_dsn(runbook)
    if dsn is None:
        return []
    ready = _Readiness(runbook, inventory, variables)
    endpoints = endpoints_of(dsn, inventory, runbook_hosts(runbook, inventory))
    nodes = [n for n in (ready.answer(e) for e in endpoints) if n is not None]
    primary = ready.writable(nodes, "service DSN")
    if primary is None:
        return ready.results
    standbys = [n for n in nodes if n.in_recovery]
    expected = [e for e in endpoints if e.name and e != primary.endpoint]
    if len(endpoints) > 1 and not standbys and expected:
        ready.record(", ".join(e.label for e in expected), "replication streaming", False,
                     "no standby answers: nothing to fail over to — start it "
                     "(the lab: drdrill lab repair)", time.monotonic())
    for standby in standbys:
        ready.replication(primary, standby)
        for check in settings_checks(runbook.preflight):
            ready.settings(primary, standby, check)
    return ready.results


def service_endpoint_problems(runbook: Runbook, inventory: Inventory) -> list[str]:
    """Why the service is down, one line per endpoint of its PostgreSQL DSN, or [] when an
    endpoint accepts writes (or the service is not PostgreSQL: nothing to say)."""
    dsn = _service_dsn(runbook)
    if dsn is None:
        return []
    problems = []
    for endpoint in endpoints_of(dsn, inventory, runbook_hosts(runbook, inventory)):
        try:
            with psycopg.connect(endpoint.dsn, autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
        except psycopg.Error as exc:
            problems.append(f"{endpoint.label} does not answer: {_first_line(exc)}")
            continue
        if row is not None and not row[0]:
            return []
        problems.append(f"{endpoint.label} is a standby (read-only)")
    return problems
