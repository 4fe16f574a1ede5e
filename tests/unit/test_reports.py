"""Golden-ish tests of the html, markdown and junit reports on the fixture run."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import fixtures.make_fixture_run as fixture_module
from drdrill.report import load_run, render, write_reports
from drdrill.report.html import render_html
from drdrill.report.junit import render_junit
from drdrill.report.markdown import SECTIONS, render_markdown


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return Path(fixture_module.make_run(tmp_path))


@pytest.fixture()
def loaded(run_dir: Path) -> tuple[dict[str, Any], list[Any]]:
    return load_run(run_dir)


def _svg_bars(html: str) -> tuple[ET.Element, list[ET.Element]]:
    match = re.search(r"<svg class=\"timeline\".*?</svg>", html, re.S)
    assert match, "no timeline svg"
    svg = ET.fromstring(match.group(0))
    bars = [e for e in svg.iter("rect") if "bar" in (e.get("class") or "").split()]
    return svg, bars


def test_html_timeline_has_one_bar_per_step_at_scaled_positions(loaded: Any) -> None:
    record, events = loaded
    html = render_html(record, events)
    svg, bars = _svg_bars(html)
    steps = record["steps"]
    assert len(bars) == len(steps) == 8
    x0, scale = float(svg.get("data-x0", "nan")), float(svg.get("data-scale", "nan"))
    for bar, step in zip(bars, steps, strict=True):
        assert int(bar.get("data-index", "0")) == step["index"]
        assert float(bar.get("x", "nan")) == pytest.approx(x0 + step["start_s"] * scale, abs=0.01)
        assert float(bar.get("width", "nan")) == pytest.approx(
            max(step["duration_s"] * scale, 2.0), abs=0.01)
    # relative positions: the bars follow each other in time, and their x/width ratios
    # equal the ratios of start and duration
    first, last = steps[0], steps[-1]
    span_px = float(bars[-1].get("x", "0")) - float(bars[0].get("x", "0"))
    assert span_px / scale == pytest.approx(last["start_s"] - first["start_s"], abs=0.01)
    classes = [b.get("class", "") for b in bars]
    assert "failed" in classes[-1] and "manual" in classes[1] and "ok" in classes[0]


def test_html_marks_t0_restored_deadline_probe_band_and_canary(loaded: Any) -> None:
    record, events = loaded
    svg, _ = _svg_bars(render_html(record, events))
    scale, x0 = float(svg.get("data-scale", "0")), float(svg.get("data-x0", "0"))
    markers = {m.get("class", "").split()[1]: float(m.get("x1", "nan"))
               for m in svg.iter("line") if "marker" in (m.get("class") or "").split()}
    assert markers["t0"] == pytest.approx(x0 + 12.0 * scale, abs=0.01)
    assert markers["restored"] == pytest.approx(x0 + 29.5 * scale, abs=0.01)
    assert markers["deadline"] == pytest.approx(x0 + (12.0 + 60.0) * scale, abs=0.01)
    probes = [r for r in svg.iter("rect") if "probe" in (r.get("class") or "")]
    assert any("down" in (p.get("class") or "") for p in probes)
    assert any("up" in (p.get("class") or "") for p in probes)
    lost = [c for c in svg.iter("line") if (c.get("class") or "") == "canary lost"]
    assert len(lost) == 2
    failed_attempts = [r for r in svg.iter("rect") if r.get("class") == "attempt-failed"]
    assert len(failed_attempts) == 1  # the retried promote; the final failure is the bar


def test_html_verdict_in_words_and_colour(loaded: Any) -> None:
    record, events = loaded
    html = render_html(record, events)
    verdict = re.search(r'<p class="summary" id="verdict-text">(.*?)</p>', html, re.S)
    assert verdict
    text = verdict.group(1)
    assert "RTO 17.500s against 1m00.000s (met)" in text
    assert "RPO 1.000s against 0.000s (missed)" in text
    assert "2 acknowledged write(s) lost" in text
    assert '<div class="card met"><div class="k">RTO actual</div>' in html
    assert '<div class="card missed"><div class="k">RPO actual</div>' in html
    assert 'class="badge missed">MISSED</span>' in html
    for section in ("Timeline", "Steps", "Deviations", "Environment", "Checkpoints"):
        assert f">{section}</h2>" in html
    assert "promote standby&#x27; retried: 2 attempts" in html
    assert record["runbook"]["sha256"] in html and record["inventory_sha256"] in html


def test_html_is_self_contained(loaded: Any) -> None:
    record, events = loaded
    html = render_html(record, events).lower()
    for forbidden in ("http://", "https://", "src=", "@import", "<script", "url(", "href="):
        assert forbidden not in html, forbidden


def test_html_escapes_untrusted_record_values(loaded: Any) -> None:
    record, events = loaded
    evil = '<script>alert(1)</script>"&'
    record["runbook"]["name"] = evil
    record["steps"][0]["name"] = evil
    record["steps"][0]["hosts"] = [evil]
    record["operator"] = evil
    html = render_html(record, events)
    assert "<script>" not in html and "&lt;script&gt;" in html
    md = render_markdown(record, events)
    assert "<script>" not in md


def test_reports_survive_a_sparse_record() -> None:
    sparse: dict[str, Any] = {"run_id": "r1", "steps": [{"name": "only"}, "junk"],
                              "results": {"rto_s": "fast"}, "objectives": None}
    html = render_html(sparse, [])
    assert "n/a" in html and "<svg" in html
    assert "n/a" in render_markdown(sparse, [])
    suite = ET.fromstring(render_junit(sparse)).find("testsuite")
    assert suite is not None
    skipped = {c.get("name") for c in suite.iter("testcase") if c.find("skipped") is not None}
    assert {"objective.rto", "objective.rpo", "verification.data"} <= skipped
    assert render_html({}, []) and render_markdown({}, []) and render_junit({})


def test_markdown_has_every_section_and_the_activity_log(loaded: Any) -> None:
    record, events = loaded
    md = render_markdown(record, events)
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)
    summary = md.split("## 1. Identity")[0].split("## Executive summary")[1]
    assert len([line for line in summary.splitlines() if line.startswith("- ")]) == 3
    assert record["runbook"]["sha256"] in md and record["run_id"] in md
    assert "| 2026-03-14T09:00:01.400Z | 1.400s | 2. confirm change window | manual | manual " \
           "| ok | 8.200s | 1 | alice |" in md
    assert "| 5. promote standby | playbook | automated | ok | 8.500s | 2 |" in md
    assert "| RPO | 1.000s | 0.000s | missed |" in md
    assert "| # | issue | owner | due date | status |" in md


def test_junit_fails_exactly_the_missed_objectives_and_failed_steps(loaded: Any) -> None:
    record, _ = loaded
    root = ET.fromstring(render_junit(record))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "postgres-failover"
    cases = suite.findall("testcase")
    assert len(cases) == len(record["steps"]) + 3 == int(suite.get("tests", "0"))
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {"08 verify data", "objective.rpo", "verification.data"}
    assert int(suite.get("failures", "0")) == 3
    promote = next(c for c in cases if c.get("name") == "05 promote standby")
    assert float(promote.get("time", "0")) == pytest.approx(8.5)
    for case in cases:
        assert case.get("classname") and case.get("time") is not None


def test_junit_all_met_has_no_failures(tmp_path: Path) -> None:
    run = fixture_module.make_run(tmp_path, lost=0)
    record, _ = load_run(run)
    suite = ET.fromstring(render_junit(record)).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_junit_rto_missed(tmp_path: Path) -> None:
    record, _ = load_run(fixture_module.make_run(tmp_path, rto_target_s=10.0))
    suite = ET.fromstring(render_junit(record)).find("testsuite")
    assert suite is not None
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "objective.rto" in failed


def test_write_reports_writes_both_and_never_raises(run_dir: Path, tmp_path: Path) -> None:
    assert write_reports(run_dir) == []
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (run_dir / "report.md").read_text().startswith("# After-action report")
    empty = tmp_path / "empty"
    empty.mkdir()
    problems = write_reports(empty)
    assert problems and "not written" in problems[0]


def test_json_format_is_the_record(loaded: Any) -> None:
    record, events = loaded
    assert json.loads(render(record, events, "json")) == record
