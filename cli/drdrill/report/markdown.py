"""The after-action report (Markdown), in the shape NIST SP 800-34 test reports, FFIEC
business-continuity exercise reports and DORA digital-operational-resilience test reports ask
for: an executive summary in three lines, identity, scope and scenario, objectives and
success criteria, participants, a timestamped activity log, results against objectives,
problems and deviations, and a remediation plan left for the team to fill in.
"""

from __future__ import annotations

from collections.abc import Sequence

from drdrill.events import Event
from drdrill.report import data
from drdrill.report.data import NA, Record
from drdrill.report.isolated import isolated_lines

SECTIONS = (
    "Executive summary",
    "1. Identity",
    "2. Scope and scenario",
    "3. Objectives and success criteria",
    "4. Participants",
    "5. Activity log",
    "6. Results against objectives",
    "7. Problems and deviations",
    "8. Remediation",
)


def cell(value: object) -> str:
    """A Markdown table cell: untrusted text cannot break out of its cell or row."""
    text = value if isinstance(value, str) else data.text(value)
    for old, new in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"),
                     ("\r", " "), ("\n", " ")):
        text = text.replace(old, new)
    return text


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def _line(value: object) -> str:
    return cell(value)


def executive_summary(record: Record) -> list[str]:
    v = data.verdict(record)
    runbook = data.section(record, "runbook")
    overall = {True: "all objectives met", False: "objectives missed",
               None: "results incomplete"}[v.met]
    dev = data.deviations(record)
    return [
        f"- **Outcome:** {_line(runbook.get('name'))} {_line(record.get('mode'))} run "
        f"{_line(record.get('run_id'))} {_line(v.status)}: {overall}.",
        f"- **Recovery:** RTO {data.secs(v.rto_s)} vs objective {data.secs(v.rto_target_s)} "
        f"({data.met_word(v.rto_met)}); RPO {data.secs(v.rpo_s)} vs objective "
        f"{data.secs(v.rpo_target_s)} ({data.met_word(v.rpo_met)}); "
        f"{data.loss_phrase(v)}. {_split_line(record)}",
        f"- **Follow-up:** {len(dev)} deviation(s) recorded"
        + (f", first: {_line(dev[0])}." if dev else "; no remediation needed."),
    ]


def _split_line(record: Record) -> str:
    """T0 → service restored split into automated steps, human steps and waiting."""
    split = data.section(data.section(record, "results"), "time_split")
    if not split:
        return "Time to restore: split not measured (no T0 or no restoration)."
    return (f"Time to restore: automated steps {data.secs(split.get('automated_s'))}, "
            f"human steps {data.secs(split.get('human_s'))}, waiting "
            f"{data.secs(split.get('waiting_s'))}.")


def _window(record: Record) -> str:
    return f"{data.text(record.get('started_at'))} → {data.text(record.get('finished_at'))} (UTC)"


def render_markdown(record: Record, events: Sequence[Event]) -> str:
    runbook = data.section(record, "runbook")
    v = data.verdict(record)
    started = data.text(record.get("started_at"))
    out = [f"# After-action report: {_line(runbook.get('name'))} "
           f"({_line(record.get('mode'))}, {started[:10]})", ""]
    banner = isolated_lines(record)
    if banner:  # first, so nobody reads it as a failover of production
        out += [f"> **{_line(banner[0])}**", ">", *[f"> {_line(b)}" for b in banner[1:]], ""]
    out += [f"## {SECTIONS[0]}", "", *executive_summary(record), ""]

    out += [f"## {SECTIONS[1]}", ""]
    out += _table(("item", "value"), [
        ("run id", record.get("run_id")), ("exercise id", data.exercise_id(record)),
        ("date", started[:10]), ("window", _window(record)),
        ("plan version (runbook sha256)", runbook.get("sha256")),
        ("runbook", f"{data.text(runbook.get('name'))} ({data.text(runbook.get('path'))})"),
        ("inventory sha256", record.get("inventory_sha256")),
        ("mode", record.get("mode")), ("drdrill version", record.get("drdrill_version")),
        ("journal last hash", record.get("journal_last_hash")),
    ])

    out += ["", f"## {SECTIONS[2]}", "", _line(data.description(record, events)), ""]
    hosts = sorted({h for s in data.steps(record) for h in s.hosts})
    out += [f"Steps in scope: {len(data.steps(record))}; hosts: {cell(hosts)}.", ""]

    out += [f"## {SECTIONS[3]}", ""]
    out += _table(("objective", "target", "success criterion"), [
        ("RTO", data.secs(v.rto_target_s), "service restored (probe passes) within the "
         "target after T0"),
        ("RPO", data.secs(v.rpo_target_s), "data-loss window of acknowledged writes within "
         "the target"),
        ("data verification", "0 lost writes", "every acknowledged canary write present "
         "after recovery; verification steps pass"),
    ])

    out += ["", f"## {SECTIONS[4]}", ""]
    acks = sorted({s.acknowledged_by for s in data.steps(record)
                   if s.manual and s.acknowledged_by != NA})
    out += _table(("role", "name"), [
        ("operator", record.get("operator")),
        ("acknowledged manual steps", acks),
    ] + ([("exercise participant", data.section(record, "exercise").get("participant"))]
         if data.section(record, "exercise").get("participant") else []))

    out += ["", f"## {SECTIONS[5]}", ""]
    out += _table(("time (UTC)", "+s", "step", "kind", "manual/automated", "status",
                   "duration", "attempts", "acknowledged by"),
                  [(s.started_at, data.secs(s.start_s), f"{s.index}. {s.name}"
                    + ("" if s.phase == "main" else f" ({s.phase})")
                    + (f" [parallel: {s.group}]" if s.group else ""), s.kind, s.mode_word,
                    s.status, data.secs(s.duration_s), s.attempts,
                    s.acknowledged_by if s.manual else "")
                   for s in data.steps(record)])
    out += ["", "Checkpoints:", ""]
    out += _table(("checkpoint", "time (UTC)", "+s"),
                  [(name, wall, data.secs(mono))
                   for name, wall, mono in data.instants(record, events)])

    out += ["", f"## {SECTIONS[6]}", ""]
    results = data.section(record, "results")
    out += _table(("measure", "actual", "objective", "result"), [
        ("RTO", data.secs(v.rto_s), data.secs(v.rto_target_s), data.met_word(v.rto_met)),
        ("RPO", data.secs(v.rpo_s), data.secs(v.rpo_target_s), data.met_word(v.rpo_met)),
        ("lost writes", v.lost_writes if v.rpo_measured else "not measured", "0",
         data.met_word(v.data_met)),
        ("downtime observed", data.secs(v.downtime_s), "", ""),
        ("T0 set by", v.t0_source, "", ""),
        ("acknowledged writes", results.get("acked_writes"), "", ""),
        ("unacknowledged writes that survived", results.get("unknown_survived"), "", ""),
        ("overall", v.status, "", data.met_word(v.met)),
    ])

    out += ["", "Outages seen by the service probe (every one, planned or not):", ""]
    out += _outage_table(record)

    out += ["", f"## {SECTIONS[7]}", ""]
    devs = data.deviations(record)
    out += [f"- {_line(d)}" for d in devs] if devs else ["None recorded."]

    out += ["", f"## {SECTIONS[8]}", "",
            "To be completed by the exercise owner: one row per problem above.", ""]
    out += _table(("#", "issue", "owner", "due date", "status"),
                  [(i, d, "", "", "open") for i, d in enumerate(devs, start=1)]
                  or [("1", "", "", "", "")])
    out += ["", "Sign-off: ______________________  date: ____________", ""]
    return "\n".join(out)


def _outage_table(record: Record) -> list[str]:
    rows = [(data.secs(o.start_s), data.secs(o.end_s) if o.end_s is not None
             else "not restored", data.secs(o.duration_s), o.step)
            for o in data.outages(record)]
    if not rows:
        return ["None recorded."]
    return _table(("from +s", "to +s", "duration", "began during step"), rows)
