"""The HTML report opened in a real headless browser (Debian's chromium): a screenshot is
taken, it is not blank and shows the timeline's colours, and the page makes no network
request. Network requests are caught two ways: every http(s) request is forced through a
recording proxy on 127.0.0.1 (host resolution is disabled as well), and the HTML itself has
no external reference. A positive control proves the proxy does see a page that fetches.

The screenshot is kept under ``artifacts/`` in the repository root and its path printed.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import pytest

from drdrill.report import load_run
from drdrill.report.html import render_html

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).exists()),
                None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


class RecordingProxy:
    """A TCP listener that records the first line of every connection (the proxy request:
    ``CONNECT host:443`` or ``GET http://…``) and closes it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"<no request line>"
                self.requests.append(first.decode("latin-1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def screenshot(html: Path, png: Path, tmp: Path,
               proxy_port: int) -> subprocess.CompletedProcess[str]:
    """Headless screenshot of ``html``; names resolve nowhere and every http(s) request goes
    to the recording proxy (the resolver rules must spare 127.0.0.1, the proxy's address)."""
    assert CHROMIUM
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-default-apps",
        f"--user-data-dir={tmp / 'profile'}", f"--screenshot={png}",
        "--window-size=1280,1600", "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{proxy_port}", "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr", "--v=1",
        html.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


# Chromium's own service endpoints (time, component update, accounts): requests to them come
# from the browser, not from the page, if a future version ignores the disabling flags.
_BROWSER_HOSTS = ("google.com", "googleapis.com", "gvt1.com")


def _browser_own(request_line: str) -> bool:
    parts = request_line.split()
    target = parts[1] if len(parts) > 1 else ""
    host = target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return any(host == h or host.endswith("." + h) for h in _BROWSER_HOSTS)


def decode_png_rows(data: bytes, max_rows: int) -> tuple[int, int, list[bytes], int]:
    """(width, height, first ``max_rows`` unfiltered rows, bytes per pixel) of an 8-bit
    RGB/RGBA PNG, decoded in pure Python."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = bpp = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(min(height, max_rows)):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def pixels(rows: list[bytes], bpp: int) -> set[tuple[int, int, int]]:
    return {tuple(row[i:i + 3]) for row in rows for i in range(0, len(row), bpp)}  # type: ignore[misc]


def test_report_renders_in_chromium_without_network(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import fixtures.make_fixture_run as fx
    record, events = load_run(fx.make_run(tmp_path / "runs"))
    html_text = render_html(record, events)
    lowered = html_text.lower()
    for ref in ("http://", "https://", "src=", "@import", "url(", "href=", "<link", "<script"):
        assert ref not in lowered, f"external reference {ref!r} in the report"
    page = tmp_path / "report.html"
    page.write_text(html_text, encoding="utf-8")
    png = tmp_path / "report.png"
    proxy = RecordingProxy()
    try:
        result = screenshot(page, png, tmp_path, proxy.port)
    finally:
        proxy.close()
    assert png.is_file() and png.stat().st_size > 10_000, result.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / "report-screenshot.png"
    shutil.copyfile(png, kept)
    (ARTIFACTS / "report-screenshot.html").write_text(html_text, encoding="utf-8")
    page_requests = [r for r in proxy.requests if not _browser_own(r)]
    own = sorted({r.split()[1].split("?")[0] for r in proxy.requests if _browser_own(r)})
    with capsys.disabled():
        print(f"\nreport screenshot: {kept} (from {png}); page requests: "
              f"{len(page_requests)}; browser's own requests ignored: {own or 'none'}")
    assert page_requests == [], f"the page made network requests: {page_requests}"
    fetched = [line for line in result.stderr.splitlines()
               if ("http://" in line or "https://" in line) and "url_request" in line.lower()]
    assert fetched == [], fetched[:5]

    width, height, rows, bpp = decode_png_rows(png.read_bytes(), max_rows=900)
    assert (width, height) == (1280, 1600)
    colours = pixels(rows, bpp)
    assert len(colours) > 50, f"screenshot looks blank: {len(colours)} distinct colours"
    assert (0x34, 0xA8, 0x53) in colours, "no green step bar drawn"
    assert (0xF2, 0x8B, 0x82) in colours, "no service-down band drawn"


def test_recording_proxy_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """Positive control: a page with an external image is caught by the proxy."""
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p>'
                    '<img src="http://drdrill-test.example/pixel.png"></body></html>')
    proxy = RecordingProxy()
    try:
        screenshot(page, tmp_path / "f.png", tmp_path, proxy.port)
    finally:
        proxy.close()
    assert any("drdrill-test.example" in r for r in proxy.requests), proxy.requests
