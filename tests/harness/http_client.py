"""An independent HTTP client: ground truth for drdrill's outages of an HTTP service.

A separate OS process (``python tests/harness/http_client.py``) GETs one URL every
``interval_s`` with urllib and its own timeout, the way a client of the transfer service
does: an attempt is good only when the answer is HTTP 200 and its JSON has the field the
client parses (``amount_cents``, the field version N+1 of the lab's service renames). Each
attempt — its start (wall clock), duration, outcome, the site that answered — is one JSON
line, flushed. It shares no code with cli/drdrill.

    client = HttpClient(url, Path("/tmp/x/client.jsonl"))
    client.start()
    ...                         # run the drill
    log = client.stop()         # ClientLog: attempts, outages()
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Attempt:
    start_wall: float
    duration_s: float
    ok: bool
    site: str
    detail: str


@dataclass(frozen=True)
class Outage:
    """First failed attempt's start -> the next good attempt's start (wall clock)."""

    start: float
    end: float | None
    failed_attempts: int

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class ClientLog:
    attempts: tuple[Attempt, ...]

    def outages(self, since: float = 0.0) -> list[Outage]:
        out: list[Outage] = []
        first: Attempt | None = None
        failed = 0
        for attempt in sorted(self.attempts, key=lambda a: a.start_wall):
            if attempt.start_wall < since:
                continue
            if not attempt.ok:
                first = first or attempt
                failed += 1
            elif first is not None:
                out.append(Outage(first.start_wall, attempt.start_wall, failed))
                first, failed = None, 0
        if first is not None:
            out.append(Outage(first.start_wall, None, failed))
        return out

    def last_site(self) -> str:
        good = [a for a in self.attempts if a.ok]
        return max(good, key=lambda a: a.start_wall).site if good else ""


def read_log(path: Path) -> ClientLog:
    attempts = []
    for line in path.read_text().splitlines():
        if line.strip():
            b = json.loads(line)
            attempts.append(Attempt(float(b["start_wall"]), float(b["duration_s"]),
                                    bool(b["ok"]), str(b["site"]), str(b["detail"])))
    return ClientLog(tuple(attempts))


class HttpClient:
    def __init__(self, url: str, log_path: Path, interval_s: float = 0.02,
                 timeout_s: float = 1.0) -> None:
        self.url, self.log_path = url, log_path
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--url", self.url, "--log", str(self.log_path),
             "--interval", str(self.interval_s), "--timeout", str(self.timeout_s)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.log_path.read_text():
            time.sleep(0.02)

    def stop(self) -> ClientLog:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        return read_log(self.log_path)


def _attempt(url: str, timeout_s: float) -> tuple[bool, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        return False, "", f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt
        return False, "", type(exc).__name__
    try:
        body = json.loads(raw)
    except ValueError:
        return False, "", "not JSON"
    ok = status == 200 and isinstance(body, dict) and isinstance(body.get("amount_cents"), int)
    site = str(body.get("site", "")) if isinstance(body, dict) else ""
    return ok, site, f"HTTP {status}" + ("" if ok else " without amount_cents")


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    with args.log.open("a") as log:
        while not stopping:
            start_wall, start = time.time(), time.monotonic()
            ok, site, detail = _attempt(args.url, args.timeout)
            log.write(json.dumps({"start_wall": start_wall,
                                  "duration_s": time.monotonic() - start, "ok": ok,
                                  "site": site, "detail": detail}) + "\n")
            log.flush()
            time.sleep(max(0.0, args.interval - (time.monotonic() - start)))


if __name__ == "__main__":
    _main()
