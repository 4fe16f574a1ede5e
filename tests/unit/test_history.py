"""History over several generated runs: ordering, filtering, trend, CSV/JSON/HTML, CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import fixtures.make_fixture_run as fx
from drdrill.report.history import (
    CSV_COLUMNS,
    HistoryRow,
    collect_history,
    direction,
    sparkline,
    to_csv,
    to_json,
    trend,
)
from drdrill.report.history_html import render_history_html

# (run id, runbook, quarter start, service restored at → RTO = restored - 12, lost writes)
RUNS = [
    ("q1-failover", "postgres-failover", datetime(2025, 3, 10, tzinfo=UTC), 52.0, 0),
    ("q2-failover", "postgres-failover", datetime(2025, 6, 10, tzinfo=UTC), 92.5, 2),  # missed
    ("q3-failover", "postgres-failover", datetime(2025, 9, 10, tzinfo=UTC), 40.5, 0),
    ("q4-failover", "postgres-failover", datetime(2025, 12, 10, tzinfo=UTC), 29.5, 0),
    ("q2-restore", "postgres-restore", datetime(2025, 6, 20, tzinfo=UTC), 30.5, 0),
    ("q4-restore", "postgres-restore", datetime(2025, 12, 20, tzinfo=UTC), 39.5, 2),
]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for run_id, runbook, started, restored, lost in RUNS:
        fx.make_run(root, run_id, runbook=runbook, started=started, restored=restored,
                    lost=lost, rpo_target_s=0.0)
    (root / "no-record").mkdir()
    (root / "no-record" / "journal.jsonl").write_text("")
    (root / "broken").mkdir()
    (root / "broken" / "record.json").write_text("{not json")
    (root / "a-list").mkdir()
    (root / "a-list" / "record.json").write_text("[]")
    (root / "stray-file.txt").write_text("x")
    return root


def test_newest_first_and_unreadable_dirs_skipped(runs_dir: Path) -> None:
    rows = collect_history(runs_dir, None)
    assert [r.run_id for r in rows] == ["q4-restore", "q4-failover", "q3-failover",
                                        "q2-restore", "q2-failover", "q1-failover"]
    q2 = next(r for r in rows if r.run_id == "q2-failover")
    assert q2.rto_s == pytest.approx(80.5) and q2.rto_target_s == 60.0
    assert q2.lost_writes == 2 and q2.met is False and q2.status == "failed"
    q4 = next(r for r in rows if r.run_id == "q4-failover")
    assert q4.met is True and q4.rpo_s == 0.0 and q4.mode == "drill"


def test_filter_by_runbook_name_or_file(runs_dir: Path) -> None:
    by_name = collect_history(runs_dir, "postgres-restore")
    assert [r.run_id for r in by_name] == ["q4-restore", "q2-restore"]
    assert [r.run_id for r in collect_history(runs_dir, "postgres-restore.yml")] == \
        ["q4-restore", "q2-restore"]
    assert collect_history(runs_dir, "nope") == []
    assert collect_history(runs_dir / "missing", None) == []


def test_trend_direction_per_runbook(runs_dir: Path) -> None:
    trends = trend(collect_history(runs_dir, None))
    failover, restore = trends["postgres-failover"], trends["postgres-restore"]
    assert failover.direction == "improving"  # 17.5 s after 28.5 s
    assert failover.latest_rto_s == pytest.approx(17.5)
    assert failover.previous_rto_s == pytest.approx(28.5)
    assert restore.direction == "worse"  # 27.5 s after 18.5 s
    assert failover.runs == 4 and len(failover.sparkline) == 4
    assert failover.sparkline[1] == "█" and failover.sparkline[-1] == "▁"


def test_direction_and_sparkline_edges() -> None:
    assert direction(10.0, 10.2) == "flat"
    assert direction(None, 3.0) == "n/a"
    assert direction(1.0, 0.0) == "worse" and direction(0.0, 0.0) == "flat"
    assert sparkline([]) == "" and sparkline([None, 2.0]) == " ▅"
    single = trend([HistoryRow("r", "2025", "rb", "drill", 3.0, 5.0, 0, 0, 0, True, "passed")])
    assert single["rb"].direction == "n/a"


def test_csv_has_fixed_documented_columns(runs_dir: Path) -> None:
    text = to_csv(collect_history(runs_dir, None))
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == list(CSV_COLUMNS) == [
        "run_id", "date", "runbook", "mode", "rto_s", "rto_target_s", "rpo_s",
        "rpo_target_s", "lost_writes", "met", "status"]
    body = list(reader)
    assert len(body) == 6
    q2 = next(r for r in body if r[0] == "q2-failover")
    assert q2 == ["q2-failover", "2025-06-10T00:00:00.000Z", "postgres-failover", "drill",
                  "80.5", "60.0", "1.0", "0.0", "2", "false", "failed"]


def test_json_has_runs_and_trends(runs_dir: Path) -> None:
    body = json.loads(to_json(collect_history(runs_dir, None)))
    assert [r["run_id"] for r in body["runs"]][0] == "q4-restore"
    assert body["trends"]["postgres-failover"]["direction"] == "improving"


def test_html_chart_draws_series_and_objective(runs_dir: Path) -> None:
    html = render_history_html(collect_history(runs_dir, None))
    lowered = html.lower()
    for forbidden in ("http://", "https://", "src=", "@import", "<script"):
        assert forbidden not in lowered
    assert html.count('<svg class="chart" data-series="rto_s"') == 2
    assert html.count('class="objective"') == 4
    assert html.count('class="pt missed"') >= 1 and "improving" in html


def test_history_command_formats(runs_dir: Path, tmp_path: Path) -> None:
    from drdrill.commands.history_cmd import command

    runner = CliRunner()
    result = runner.invoke(command, ["--runs-dir", str(runs_dir), "--format", "csv",
                                     "--runbook", "postgres-failover"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert len(result.output.splitlines()) == 5
    table = runner.invoke(command, ["--runs-dir", str(runs_dir)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "q2-failover" in table.output and "improving" in table.output
    out = tmp_path / "history.html"
    html = runner.invoke(command, ["--runs-dir", str(runs_dir), "--format", "html",
                                   "-o", str(out)])
    assert html.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    empty = runner.invoke(command, ["--runs-dir", str(tmp_path / "none")])
    assert empty.exit_code == 0 and "no runs" in empty.output


def test_filter_by_runbook_path_as_typed(runs_dir: Path) -> None:
    """`history --runbook drills/postgres-restore.yml` (a path, any spelling) finds its runs."""
    for query in ("drills/postgres-restore.yml", "./drills/postgres-restore.yml",
                  "/elsewhere/drills/postgres-restore.yml"):
        assert [r.run_id for r in collect_history(runs_dir, query)] == \
            ["q4-restore", "q2-restore"], query
    assert collect_history(runs_dir, "drills/nope.yml") == []


def test_trend_excludes_aborted_and_error_runs() -> None:
    def row(run_id: str, date: str, rto: float, status: str) -> HistoryRow:
        return HistoryRow(run_id, date, "rb", "drill", rto, 60.0, 0.0, 0.0, 0, None, status)

    rows = [row("d", "2025-04", 1.0, "error"), row("c", "2025-03", 2.0, "aborted"),
            row("b", "2025-02", 30.0, "passed"), row("a", "2025-01", 20.0, "failed")]
    got = trend(rows)["rb"]
    assert got.latest_rto_s == 30.0 and got.previous_rto_s == 20.0  # not 1.0 after 2.0
    assert got.direction == "worse" and len(got.sparkline) == 2
