"""``tcp`` and ``http`` probes (standard library only)."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

from drdrill.probes.base import ProbeContext, ProbeResult, register_probe
from drdrill.runbook.model import ProbeSpec

MAX_BODY = 64 * 1024  # read at most this much of a body checked with expect_body


class TcpProbe:
    def __init__(self, spec: ProbeSpec, context: ProbeContext) -> None:
        self.host = str(spec.options["host"])
        self.port = int(spec.options["port"])
        self.timeout_s = spec.timeout_s

    def check(self) -> ProbeResult:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                return ProbeResult(True, f"connected to {self.host}:{self.port}")
        except OSError as exc:
            return ProbeResult(False, f"{self.host}:{self.port}: {exc.strerror or exc}")

    def close(self) -> None:
        return None


class HttpProbe:
    def __init__(self, spec: ProbeSpec, context: ProbeContext) -> None:
        self.url = str(spec.options["url"])
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"http probe url must be http(s): {self.url!r}")
        self.expect_status = int(spec.options.get("expect_status", 200))
        body = spec.options.get("expect_body")
        self.expect_body = None if body is None else re.compile(str(body))
        self.timeout_s = spec.timeout_s

    def check(self) -> ProbeResult:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:  # noqa: S310
                status = int(response.status)
                body = response.read(MAX_BODY) if self.expect_body else b""
        except urllib.error.HTTPError as exc:
            status, body = exc.code, b""
        except (urllib.error.URLError, OSError) as exc:
            return ProbeResult(False, f"{self.url}: {exc}")
        ok = status == self.expect_status
        detail = f"HTTP {status}" + ("" if ok else f" (expected {self.expect_status})")
        if ok and self.expect_body is not None:
            text = body.decode(errors="replace")
            if not self.expect_body.search(text):
                # the answer a client parses is wrong (e.g. a renamed field): a failed check
                return ProbeResult(False, f"HTTP {status}, body does not match "
                                          f"{self.expect_body.pattern!r}: {text[:120]!r}")
        return ProbeResult(ok, detail)

    def close(self) -> None:
        return None


def register() -> None:
    register_probe("tcp", TcpProbe)
    register_probe("http", HttpProbe)
