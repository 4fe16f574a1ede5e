"""History across runs: one row per run directory, newest first, and a trend per runbook.

CSV columns, in this fixed order (``CSV_COLUMNS``)::

    run_id, date, runbook, mode, rto_s, rto_target_s, rpo_s, rpo_target_s, lost_writes,
    met, status

``date`` is the run's ``started_at`` (UTC ISO-8601); numbers are seconds; an unknown value is
an empty cell; ``met`` is ``true``/``false`` (RTO, RPO and data verification all met) or empty.

Trend: per runbook, the latest run's RTO against the previous run's (of the same runbook, with
a measured RTO): ``improving`` when lower by more than ``FLAT_TOLERANCE`` (5 %), ``worse``
when higher by more, ``flat`` otherwise, ``n/a`` with fewer than two measured runs.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from drdrill.report import data, read_record

CSV_COLUMNS = ("run_id", "date", "runbook", "mode", "rto_s", "rto_target_s", "rpo_s",
               "rpo_target_s", "lost_writes", "met", "status")
FLAT_TOLERANCE = 0.05
SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class HistoryRow:
    run_id: str
    date: str
    runbook: str
    mode: str
    rto_s: float | None
    rto_target_s: float | None
    rpo_s: float | None
    rpo_target_s: float | None
    lost_writes: int | None
    met: bool | None
    status: str


@dataclass(frozen=True)
class Trend:
    runbook: str
    direction: str  # improving | worse | flat | n/a
    latest_rto_s: float | None
    previous_rto_s: float | None
    runs: int
    sparkline: str  # RTO oldest → newest


def row_from_record(record: data.Record, fallback_id: str) -> HistoryRow:
    v = data.verdict(record)
    runbook = data.section(record, "runbook")
    return HistoryRow(
        run_id=str(record.get("run_id") or fallback_id),
        date=data.text(record.get("started_at")), runbook=data.text(runbook.get("name")),
        mode=data.text(record.get("mode")), rto_s=v.rto_s, rto_target_s=v.rto_target_s,
        rpo_s=v.rpo_s, rpo_target_s=v.rpo_target_s, lost_writes=v.lost_writes, met=v.met,
        status=v.status,
    )


def collect_history(runs_dir: Path, runbook: str | None = None) -> list[HistoryRow]:
    """Rows of every run directory under ``runs_dir`` with a readable record.json (others
    are skipped), newest first; ``runbook`` keeps only runs of that runbook name."""
    return [row for row, _record in collect_runs(runs_dir, runbook)]


def collect_runs(runs_dir: Path, runbook: str | None = None
                 ) -> list[tuple[HistoryRow, data.Record]]:
    """``collect_history``'s rows with each run's record (what ``plan`` predicts from)."""
    runs: list[tuple[HistoryRow, data.Record]] = []
    try:
        entries = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    except OSError:
        entries = []
    for entry in entries:
        if not entry.is_dir():
            continue
        record = read_record(entry)
        if record is None:
            continue
        row = row_from_record(record, entry.name)
        if runbook is None or _wanted(runbook, _names(record, row)):
            runs.append((row, record))
    runs.sort(key=lambda run: (run[0].date if run[0].date != data.NA else "", run[0].run_id),
              reverse=True)
    return runs


def counted(row: HistoryRow) -> bool:
    """An aborted or errored run's figures (if any) are not a drill result: trends and
    predictions count only runs that completed (passed or failed)."""
    return row.status in ("passed", "failed")


def _names(record: data.Record, row: HistoryRow) -> set[str]:
    """What ``--runbook`` may say: the runbook's name, its path, or its file name stem."""
    path = data.section(record, "runbook").get("path")
    names = {row.runbook}
    if isinstance(path, str) and path:
        names |= {path, Path(path).name, Path(path).stem}
    return names


def _wanted(query: str, names: set[str]) -> bool:
    """``--runbook`` as a name, or as a path of the runbook file in any spelling
    (drills/x.yml, ./drills/x.yml, /abs/drills/x.yml): a path matches by its file name."""
    given = Path(query)
    return query in names or (given.suffix in (".yml", ".yaml") and given.name in names)


def sparkline(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif high == low:
            out.append(SPARK[len(SPARK) // 2])
        else:
            out.append(SPARK[round((v - low) / (high - low) * (len(SPARK) - 1))])
    return "".join(out)


def direction(latest: float | None, previous: float | None) -> str:
    if latest is None or previous is None:
        return data.NA
    if previous == 0:
        return "flat" if latest == 0 else "worse"
    change = (latest - previous) / previous
    if change < -FLAT_TOLERANCE:
        return "improving"
    if change > FLAT_TOLERANCE:
        return "worse"
    return "flat"


def trend(rows: list[HistoryRow]) -> dict[str, Trend]:
    """Per runbook (in order of first appearance in ``rows``, newest first)."""
    by_runbook: dict[str, list[HistoryRow]] = {}
    for row in rows:
        by_runbook.setdefault(row.runbook, []).append(row)
    out = {}
    for name, group in by_runbook.items():
        oldest_first = sorted(group, key=lambda r: (r.date, r.run_id))
        done = [r for r in oldest_first if counted(r)]
        measured = [r.rto_s for r in done if r.rto_s is not None]
        latest = measured[-1] if measured else None
        previous = measured[-2] if len(measured) > 1 else None
        out[name] = Trend(name, direction(latest, previous), latest, previous,
                          len(group), sparkline([r.rto_s for r in done]))
    return out


def _cell(value: object) -> str:
    if value is None or value == data.NA:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(rows: list[HistoryRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = asdict(row)
        writer.writerow([_cell(values[c]) for c in CSV_COLUMNS])
    return buffer.getvalue()


def to_json(rows: list[HistoryRow]) -> str:
    trends = trend(rows)
    body = {"runs": [asdict(r) for r in rows],
            "trends": {name: asdict(t) for name, t in trends.items()}}
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
