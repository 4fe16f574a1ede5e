"""JUnit XML of a run, for Jenkins / GitLab CI: one ``<testsuite>`` named after the runbook,
each step a ``<testcase>`` (time = its duration, ``<failure>`` when it did not end ok,
``<skipped>`` when skipped), then ``objective.rto``, ``objective.rpo`` and
``verification.data``, each failing exactly when missed and skipped when not measurable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from drdrill.report import data
from drdrill.report.data import Record


def _case(suite: ET.Element, classname: str, name: str, time: float | None) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name,
                         time=f"{time or 0.0:.3f}")


def _objective(suite: ET.Element, name: str, actual: float | None, target: float | None,
               met: bool | None) -> None:
    case = _case(suite, "objective", name, 0.0)
    text = f"actual {data.secs(actual)}, objective {data.secs(target)}"
    if met is None:
        ET.SubElement(case, "skipped", message=f"not measured: {text}")
    elif not met:
        ET.SubElement(case, "failure", type="objective_missed", message=f"missed: {text}")
    else:
        ET.SubElement(case, "system-out").text = f"met: {text}"


def render_junit(record: Record) -> str:
    runbook = data.section(record, "runbook")
    suite_name = data.text(runbook.get("name"))
    cls = f"drdrill.{suite_name}"
    suite = ET.Element("testsuite", name=suite_name, timestamp=data.text(
        record.get("started_at")))
    for step in data.steps(record):
        phase = f" ({step.phase})" if step.phase != "main" else ""
        name = f"{step.index:02d} {step.name}{phase}"
        case = _case(suite, f"{cls}.steps", name, step.duration_s)
        detail = (f"status {step.status}, attempts {data.text(step.attempts)}, "
                  f"{step.mode_word}, hosts {data.text(list(step.hosts))}")
        if step.status == "skipped":
            ET.SubElement(case, "skipped", message=detail)
        elif step.status != "ok":
            failure = ET.SubElement(case, "failure", type=step.status,
                                    message=step.error or f"step {step.status}")
            failure.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    v = data.verdict(record)
    _objective(suite, "objective.rto", v.rto_s, v.rto_target_s, v.rto_met)
    _objective(suite, "objective.rpo", v.rpo_s, v.rpo_target_s, v.rpo_met)
    case = _case(suite, "verification", "verification.data", None)
    lost = data.text(v.lost_writes)
    if not v.rpo_measured:  # the store was unreadable: a failure, but not a data loss
        ET.SubElement(case, "failure", type="not_measured", message=data.loss_phrase(v))
    elif v.data_met is None:
        ET.SubElement(case, "skipped", message="no canary: lost writes not measured")
    elif not v.data_met:
        ET.SubElement(case, "failure", type="data_lost",
                      message="; ".join(v.data_reasons))
    else:
        ET.SubElement(case, "system-out").text = f"lost writes {lost}"
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", f"{sum(s.duration_s or 0.0 for s in data.steps(record)):.3f}")
    suites = ET.Element("testsuites", name="drdrill", tests=suite.get("tests", "0"),
                        failures=suite.get("failures", "0"))
    suites.append(suite)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
