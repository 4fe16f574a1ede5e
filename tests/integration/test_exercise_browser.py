"""The merged exercise report opened in a real headless browser (Debian's chromium): the
page makes no network request (every http(s) request forced through a recording proxy)
and the screenshot shows the matrix's ok and failed cells. Kept under ``artifacts/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drdrill.exercise.merge import merge_results
from drdrill.exercise.report import write_reports
from integration.test_report_browser import (
    CHROMIUM,
    RecordingProxy,
    _browser_own,
    decode_png_rows,
    pixels,
    screenshot,
)
from unit.test_exercise_merge import exercise_run, make_manifest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]


@pytest.mark.parametrize("variant", ["report.html", "report.anon.html"])
def test_exercise_report_renders_in_chromium_without_network(tmp_path: Path,
                                                             variant: str) -> None:
    manifest, keys = make_manifest(tmp_path, ["bank-a", "bank-b", "broker-c"])
    runs = tmp_path / "runs"
    results = [exercise_run(runs, "bank-a", keys["bank-a"]),
               exercise_run(runs, "bank-b", keys["bank-b"], lost=2),
               exercise_run(runs, "broker-c", keys["bank-a"])]  # wrong key: refused
    write_reports(merge_results(manifest, results), tmp_path / "out" / "report.html")
    page = tmp_path / "out" / variant
    png = tmp_path / "shot.png"
    proxy = RecordingProxy()
    try:
        result = screenshot(page, png, tmp_path, proxy.port)
    finally:
        proxy.close()
    assert png.is_file() and png.stat().st_size > 5_000, result.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(png, ARTIFACTS / f"exercise-{variant.replace('.html', '')}.png")
    assert [r for r in proxy.requests if not _browser_own(r)] == []
    _width, _height, rows, bpp = decode_png_rows(png.read_bytes(), max_rows=700)
    colours = pixels(rows, bpp)
    assert (0xD9, 0xF2, 0xD9) in colours, "no ok cell drawn"
    assert (0xF7, 0xD4, 0xD4) in colours, "no failed cell drawn"
    text = page.read_text()
    assert ("bank-a" in text) == (variant == "report.html")
