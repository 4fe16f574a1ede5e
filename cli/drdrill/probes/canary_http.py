"""``http`` canary: acknowledged writes through a service's HTTP API (standard library only).

Each marker is one ``POST <url>/transfers`` with ``{"reference": "<prefix>-<run>-<seq>",
"amount_cents": seq, "client_ts": ...}``. A write counts as acknowledged only on a 2xx whose
JSON body carries an ``id`` — what a client is told when its transfer is stored. The
reference is unique per run and the API is idempotent on it, so a write that timed out on
one URL may safely be sent to the next one of ``fallback`` (a client that knows the sites'
URLs and falls back to the next, as market-data and payment clients do); a refused
connection is tried on the next URL at once. After recovery ``read_back`` lists the run's
references (``GET <url>/transfers?prefix=...``) from whichever URL answers, and raises
CanaryUnreadable when none does: an unreadable store is never an empty one.

The API contract is the lab's transfer service (drdrill/lab/service/app.py); a real service
with other paths needs its own canary type.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

from drdrill.errors import DrdrillError
from drdrill.probes.base import NO_CONTEXT, CanaryWrite, ProbeContext, register_canary
from drdrill.runbook.model import CanarySpec

DEFAULT_PREFIX = "drdrill-canary"


class CanaryUnreadable(DrdrillError):
    """No URL answered the read-back by its deadline: RPO is not measured."""


def _urls(spec: CanarySpec) -> list[str]:
    urls = [str(spec.options["url"])]
    fallback = spec.options.get("fallback") or []
    urls += [str(u) for u in fallback if isinstance(u, str)]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise DrdrillError(f"http canary url must be http(s): {url!r}")
    return [u.rstrip("/") for u in urls]


def _request(url: str, timeout: float, body: dict[str, Any] | None = None
             ) -> tuple[int, dict[str, Any]]:
    """(status, JSON body); raises OSError/URLError when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = {}
    return status, parsed if isinstance(parsed, dict) else {}


class HttpCanary:
    """Options: ``url`` (required: the API's base URL, e.g. HAProxy's), ``fallback`` (URLs
    tried in order after it), ``prefix`` (of the references, default drdrill-canary)."""

    def __init__(self, spec: CanarySpec, context: ProbeContext = NO_CONTEXT) -> None:
        self.urls = _urls(spec)
        run = context.run_id or uuid.uuid4().hex[:12]  # a resumed run keeps its references
        self.prefix = f"{spec.options.get('prefix') or DEFAULT_PREFIX}-{run}-"
        self.timeout_s = spec.timeout_s
        self.last_error: str | None = None

    def reference(self, seq: int) -> str:
        return f"{self.prefix}{seq}"

    def setup(self) -> None:
        """The API must answer before the drill starts (nothing to empty: the references
        are this run's own)."""
        errors = []
        for url in self.urls:
            try:
                status, _ = _request(f"{url}/health", self.timeout_s)
            except (OSError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            if 200 <= status < 300:
                return
            errors.append(f"{url}: HTTP {status}")
        raise DrdrillError(f"http canary setup failed: {'; '.join(errors)}",
                           hint="is the service up? (drdrill lab status)")

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        body = {"reference": self.reference(seq), "amount_cents": seq, "client_ts": client_ts}
        details = []
        for url in self.urls:
            try:
                status, answer = _request(f"{url}/transfers", self.timeout_s, body)
            except (OSError, ValueError) as exc:
                details.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            if 200 <= status < 300 and answer.get("id") is not None:
                return CanaryWrite(seq, True, f"id {answer['id']} via {url}")
            details.append(f"{url}: HTTP {status} {answer.get('error') or ''}".strip())
        return CanaryWrite(seq, False, "; ".join(details))

    def read_back(self) -> set[int]:
        """Every seq of this run the API lists, from the first URL that answers, retried
        until ``max(5, timeout)`` s have passed; CanaryUnreadable after that."""
        deadline = time.monotonic() + max(5.0, self.timeout_s)
        query = f"/transfers?prefix={quote(self.prefix, safe='')}"
        while True:
            for url in self.urls:
                try:
                    status, answer = _request(url + query, max(self.timeout_s, 5.0))
                except (OSError, ValueError) as exc:
                    self.last_error = f"{url}: {exc}"
                    continue
                rows = answer.get("transfers")
                if status == 200 and isinstance(rows, list):
                    self.last_error = None
                    return self._seqs(rows)
                self.last_error = f"{url}: HTTP {status}"
            if time.monotonic() >= deadline:
                raise CanaryUnreadable(
                    f"no service URL answered the canary read-back: {self.last_error}")
            time.sleep(0.2)

    def _seqs(self, rows: list[Any]) -> set[int]:
        found = set()
        for row in rows:
            reference = str(row.get("reference", "")) if isinstance(row, dict) else ""
            tail = reference[len(self.prefix):]
            if reference.startswith(self.prefix) and tail.isdigit():
                found.add(int(tail))
        return found

    def close(self) -> None:
        return None


def register() -> None:
    register_canary("http", HttpCanary)
