"""The merged exercise report: the participant x check matrix and the aggregate, as one
JSON document from which the CSV and the self-contained HTML (inline CSS, no script, no
network) are rendered; and the anonymised variant (participants P1..Pn in a random order,
no file names, run ids or operators) for publication."""

from __future__ import annotations

import csv
import html
import io
import json
import random
import statistics
from pathlib import Path
from typing import Any

from drdrill.exercise.manifest import iso
from drdrill.exercise.merge import MISSING, OK, Merged


def report_document(merged: Merged) -> dict[str, Any]:
    manifest = merged.manifest
    checks = [c.id for c in manifest.checks]
    rows = []
    for participant in manifest.participants:
        result = merged.result_for(participant.name)
        rows.append({
            "participant": participant.name,
            "result": result.source if result else None,
            "run_id": result.run_id if result else None,
            "status": result.status if result else "no result",
            "rto_s": result.rto_s if result else None,
            "rpo_s": result.rpo_s if result else None,
            "checks": {c: ({"outcome": result.outcome(c).outcome,
                            "detail": result.outcome(c).detail} if result
                           else {"outcome": MISSING, "detail": "no accepted result"})
                       for c in checks},
        })
    return {
        "exercise": {"id": manifest.id, "scenario": manifest.scenario, "t0": iso(manifest.t0),
                     "t0_source": manifest.t0_source,
                     "window": {"start": iso(manifest.window_start),
                                "end": iso(manifest.window_end)},
                     "objectives": {"rto_s": manifest.rto_s, "rpo_s": manifest.rpo_s}},
        "checks": [{"id": c.id, "title": c.title, "kind": c.kind} for c in manifest.checks],
        "matrix": rows,
        "aggregate": aggregate(rows, checks),
        "refused": [{"source": r.source, "reason": r.category, "detail": r.detail}
                    for r in merged.refused],
    }


def aggregate(rows: list[dict[str, Any]], checks: list[str]) -> dict[str, Any]:
    """n participants, % of them completing each check (out of all the manifest's
    participants: no result counts as not completed), RTO/RPO distribution (measured only)."""
    n = len(rows)
    return {
        "participants": n,
        "results_accepted": sum(1 for r in rows if r["run_id"] is not None),
        "completed_pct": {c: round(100.0 * sum(1 for r in rows
                                               if r["checks"][c]["outcome"] == OK) / n, 1)
                          if n else None for c in checks},
        "rto_s": distribution([r["rto_s"] for r in rows if r["rto_s"] is not None]),
        "rpo_s": distribution([r["rpo_s"] for r in rows if r["rpo_s"] is not None]),
    }


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "min": None, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered),
            "p90": p90, "max": ordered[-1]}


def anonymise(document: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Same matrix and aggregate, participants P1..Pn in a shuffled order; no sources,
    run ids or refusal details (those name files and people)."""
    rows = [dict(r) for r in document["matrix"]]
    random.Random(seed).shuffle(rows)
    for number, row in enumerate(rows, start=1):
        row.update(participant=f"P{number}", result=None, run_id=None)
        row["checks"] = {c: {"outcome": v["outcome"], "detail": None}
                         for c, v in row["checks"].items()}
    return {**document, "matrix": rows, "anonymised": True,
            "refused": [{"reason": r["reason"]} for r in document["refused"]]}


def render_csv(document: dict[str, Any]) -> str:
    checks = [c["id"] for c in document["checks"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["participant", "status", "rto_s", "rpo_s", *checks])
    for row in document["matrix"]:
        writer.writerow([row["participant"], row["status"], _num(row["rto_s"]),
                         _num(row["rpo_s"]), *(row["checks"][c]["outcome"] for c in checks)])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3;text-align:left}.ok{background:#d9f2d9}.failed{background:#f7d4d4}
.missing{background:#eee;color:#666}.num{text-align:right;font-variant-numeric:tabular-nums}"""


def render_html(document: dict[str, Any]) -> str:
    ex = document["exercise"]
    checks = document["checks"]
    esc = html.escape
    head = "".join(f"<th>{esc(c['title'])}</th>" for c in checks)
    body = []
    for row in document["matrix"]:
        cells = "".join(
            f"<td class=\"{esc(row['checks'][c['id']]['outcome'])}\" title=\""
            f"{esc(row['checks'][c['id']]['detail'] or '')}\">"
            f"{esc(row['checks'][c['id']]['outcome'])}</td>" for c in checks)
        body.append(f"<tr><td>{esc(row['participant'])}</td><td>{esc(row['status'])}</td>"
                    f"<td class=\"num\">{_num(row['rto_s'])}</td>"
                    f"<td class=\"num\">{_num(row['rpo_s'])}</td>{cells}</tr>")
    agg = document["aggregate"]
    pct = "".join(f"<tr><td>{esc(c['title'])}</td><td class=\"num\">"
                  f"{agg['completed_pct'][c['id']]}%</td></tr>" for c in checks)
    dist = "".join(f"<tr><td>{k.upper()[:3]}</td>" + "".join(
        f"<td class=\"num\">{_num(agg[k][s]) if s != 'n' else agg[k][s]}</td>"
        for s in ("n", "min", "median", "p90", "max")) + "</tr>" for k in ("rto_s", "rpo_s"))
    refused = "".join(f"<li>{esc(r.get('source', '(file withheld)'))}: "
                      f"<b>{esc(r['reason'])}</b> {esc(r.get('detail') or '')}</li>"
                      for r in document["refused"]) or "<li>none</li>"
    title = f"Joint exercise {esc(ex['id'])}" + (" (anonymised)"
                                                  if document.get("anonymised") else "")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_CSS}</style></head><body>"
            f"<h1>{title}</h1><p>{esc(ex['scenario'])}</p>"
            f"<p>T0 {esc(ex['t0'])} ({esc(ex['t0_source'])}) · window "
            f"{esc(ex['window']['start'])} – {esc(ex['window']['end'])} · objectives RTO "
            f"{ex['objectives']['rto_s']:g}s, RPO {ex['objectives']['rpo_s']:g}s</p>"
            f"<h2>Participants × checks</h2><table><tr><th>participant</th><th>status</th>"
            f"<th>RTO s</th><th>RPO s</th>{head}</tr>{''.join(body)}</table>"
            f"<h2>Aggregate ({agg['participants']} participants, "
            f"{agg['results_accepted']} results accepted)</h2>"
            f"<table><tr><th>check</th><th>completed</th></tr>{pct}</table>"
            f"<table><tr><th></th><th>n</th><th>min</th><th>median</th><th>p90</th>"
            f"<th>max</th></tr>{dist}</table>"
            f"<h2>Refused results</h2><ul>{refused}</ul></body></html>\n")


def write_reports(merged: Merged, out: Path) -> list[Path]:
    """``out`` (HTML) with .json and .csv beside it, and the same three ``.anon``."""
    document = report_document(merged)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.with_suffix("")
    written = []
    for doc, base in ((document, stem), (anonymise(document), Path(f"{stem}.anon"))):
        for suffix, text in ((".html", render_html(doc)),
                             (".json", json.dumps(doc, indent=2, sort_keys=True) + "\n"),
                             (".csv", render_csv(doc))):
            path = base.with_name(base.name + suffix)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
