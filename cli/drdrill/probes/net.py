"""``tcp`` and ``http`` probes (standard library only)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from drdrill.probes.base import ProbeContext, ProbeResult, register_probe
from drdrill.runbook.model import ProbeSpec


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
        self.timeout_s = spec.timeout_s

    def check(self) -> ProbeResult:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            return ProbeResult(False, f"{self.url}: {exc}")
        ok = status == self.expect_status
        detail = f"HTTP {status}" + ("" if ok else f" (expected {self.expect_status})")
        return ProbeResult(ok, detail)

    def close(self) -> None:
        return None


def register() -> None:
    register_probe("tcp", TcpProbe)
    register_probe("http", HttpProbe)
