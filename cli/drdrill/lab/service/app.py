"""One site of the lab's client-facing "transfer" service: a stdlib HTTP server on PostgreSQL.

It is what the site-failover and upgrade-rollback drills drill: a tiny payments API whose
clients care about one thing — that a transfer they were told was stored (a 2xx with its
``id``) is stored, and that the answer has the fields they parse. Each site is one process;
both write to the lab's database through the multi-host service DSN (libpq follows the
primary), so a site failover never loses data by itself.

    GET  /health                  200 {"status": "ok", site, version} when the DB answers, else 503
    POST /transfers               {"reference", "amount_cents"} -> 201 (200 if the reference exists)
    GET  /transfers/<id|reference> the transfer, 404 when unknown
    GET  /transfers?prefix=P      {"transfers": [{"id", "reference"}...]} (canary read-back)

Every answer carries ``version`` and ``site``. Version N (``1.0.0``) answers
``amount_cents``; N+1 (``1.1.0``) is deliberately broken: it renames that field to ``amount``
(a decimal string) — the incompatible change a verification must catch.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg

from drdrill.lab.service.sites import VERSION_N, VERSION_NEXT, VERSIONS

__all__ = ["VERSIONS", "VERSION_N", "VERSION_NEXT", "Site", "ensure_schema", "serve"]
TABLE = "service_transfers"
REFERENCE_ROW = "drdrill-reference"  # always present: what probes read back
_REFERENCE = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
MAX_BODY = 64 * 1024

SCHEMA_SQL = (
    f"create table if not exists {TABLE} (id bigserial primary key, "
    "reference text not null unique, amount_cents bigint not null, site text not null, "
    "client_ts double precision, created_at timestamptz not null default now())")
SEED_SQL = (f"insert into {TABLE} (reference, amount_cents, site) values (%s, 100, 'lab') "
            "on conflict (reference) do nothing")


def ensure_schema(dsn: str) -> None:
    """Create the table and the reference transfer (idempotent; raises psycopg.Error)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
        conn.execute(SEED_SQL, (REFERENCE_ROW,))


@dataclass(frozen=True)
class Site:
    """What one process serves: its name, its version and where its data lives."""

    name: str
    version: str
    dsn: str
    statement_timeout_ms: int = 2000

    def render(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A transfer as this version answers it (N+1's incompatible field lives here)."""
        out: dict[str, Any] = {"id": row["id"], "reference": row["reference"],
                               "site": self.name, "version": self.version}
        if self.version == VERSION_N:
            out["amount_cents"] = row["amount_cents"]
        else:
            out["amount"] = f"{row['amount_cents'] / 100:.2f}"
        return out

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A fresh connection per request: the DSN finds the writable node each time."""
        return psycopg.connect(self.dsn, autocommit=True,
                               options=f"-c statement_timeout={self.statement_timeout_ms}")


Reply = tuple[int, dict[str, Any]]
_COLUMNS = ("id", "reference", "amount_cents")


def _row(values: tuple[Any, ...] | None) -> dict[str, Any] | None:
    return None if values is None else dict(zip(_COLUMNS, values, strict=True))


def health(site: Site) -> Reply:
    try:
        with site.connect() as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return 503, {"status": "down", "error": _first_line(exc)}
    return 200, {"status": "ok"}


def create(site: Site, body: Mapping[str, Any], client_ts: float | None) -> Reply:
    reference, amount = body.get("reference"), body.get("amount_cents")
    if not isinstance(reference, str) or not _REFERENCE.match(reference):
        return 400, {"error": "reference: 1-120 of A-Z a-z 0-9 _ . : -"}
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return 400, {"error": "amount_cents: a non-negative integer"}
    with site.connect() as conn:
        inserted = _row(conn.execute(
            f"insert into {TABLE} (reference, amount_cents, site, client_ts) "
            "values (%s, %s, %s, %s) on conflict (reference) do nothing "
            "returning id, reference, amount_cents",
            (reference, amount, site.name, client_ts)).fetchone())
        if inserted is not None:
            return 201, site.render(inserted)
        existing = _row(conn.execute(
            f"select id, reference, amount_cents from {TABLE} where reference = %s",
            (reference,)).fetchone())
    if existing is None:  # deleted between the two statements: not acknowledged
        return 409, {"error": "conflict, retry"}
    return 200, site.render(existing)  # idempotent: a retried write is acknowledged once


def fetch(site: Site, key: str) -> Reply:
    column = "id" if key.isdigit() else "reference"
    with site.connect() as conn:
        row = _row(conn.execute(
            f"select id, reference, amount_cents from {TABLE} where {column} = %s",
            (int(key) if column == "id" else key,)).fetchone())
    return (404, {"error": f"no transfer {key}"}) if row is None else (200, site.render(row))


def listing(site: Site, prefix: str) -> Reply:
    if not _REFERENCE.match(prefix):
        return 400, {"error": "prefix: 1-120 of A-Z a-z 0-9 _ . : -"}
    pattern = prefix.replace("_", r"\_") + "%"
    with site.connect() as conn:
        rows = conn.execute(f"select id, reference from {TABLE} where reference like %s "
                            "order by id", (pattern,)).fetchall()
    return 200, {"transfers": [{"id": r[0], "reference": r[1]} for r in rows]}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def route(site: Site, method: str, path: str, body: bytes) -> Reply:
    """The service's routing, free of HTTP plumbing (so it is testable on its own)."""
    parts = urlsplit(path)
    segments = [s for s in parts.path.split("/") if s]
    try:
        if method == "GET" and segments == ["health"]:
            return health(site)
        if method == "POST" and segments == ["transfers"]:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                return 400, {"error": "a JSON object is expected"}
            ts = data.get("client_ts")
            return create(site, data, float(ts) if isinstance(ts, int | float) else None)
        if method == "GET" and segments == ["transfers"]:
            prefix = parse_qs(parts.query).get("prefix", [""])[0]
            return listing(site, prefix)
        if method == "GET" and len(segments) == 2 and segments[0] == "transfers":
            return fetch(site, segments[1])
    except ValueError:
        return 400, {"error": "the body is not JSON"}
    except psycopg.Error as exc:
        return 503, {"error": f"database: {_first_line(exc)}"}
    return 404, {"error": f"no route {method} {parts.path}"}


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"drdrill-transfer/{site.version}"

        def _serve(self, method: str) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            body = self.rfile.read(length) if length else b""
            status, data = route(site, method, self.path, body)
            payload = json.dumps({**data, "site": site.name, "version": site.version}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Site", site.name)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None  # HAProxy's checks would flood the log; errors still go to stderr

    return Handler


def serve(site: Site, host: str, port: int,
          ready: Callable[[], None] = lambda: None) -> None:
    """Serve until the process is signalled. ``ready`` runs once the socket listens."""
    server = ThreadingHTTPServer((host, port), _handler(site))
    server.daemon_threads = True
    ready()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def serve_in_thread(site: Site, host: str, port: int) -> tuple[ThreadingHTTPServer,
                                                                  threading.Thread]:
    """For tests: the same server in a thread of this process."""
    server = ThreadingHTTPServer((host, port), _handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    return server, thread
