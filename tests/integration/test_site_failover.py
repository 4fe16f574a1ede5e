"""drills/site-failover.yml end to end on the lab with its service (``--with service``):
a real PostgreSQL pair, two real service processes, a real HAProxy, real playbooks.

The truth is an independent HTTP client (tests/harness/http_client.py: its own process,
loop, timeout and log, urllib only) reading a transfer through HAProxy every 20 ms while
the drill runs. The outage drdrill reports (first failed probe -> service restored) must
match the client's, start and end, within one probe interval plus the client's interval
(and SLACK_S of scheduling on a loaded 2-core machine). Killing the standby site instead
must leave the service up: RTO 0, no outage — for drdrill and for the client.

Ports (this module only): PostgreSQL 58703/58704, HAProxy 58751, sites 58722/58723.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from drdrill.lab.service.lab import ServicePorts
from harness.http_client import HttpClient
from harness.service_lab import (
    ROOT,
    ServiceLab,
    leftovers,
    on_wall,
    service_lab,
    skip_without_haproxy,
)
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

RUNBOOK = ROOT / "drills" / "site-failover.yml"
PROBE_INTERVAL_S = 0.1  # the runbook's service.interval
CLIENT_INTERVAL_S = 0.02
SLACK_S = 0.12  # an attempt in flight when the fault hit (~50 ms here) + scheduling
TOLERANCE_S = PROBE_INTERVAL_S + CLIENT_INTERVAL_S + SLACK_S

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Any:
    with service_lab("site-failover", (58703, 58704), ServicePorts(58751, 58722, 58723)) as lab:
        yield lab


def _drill_with_client(lab: ServiceLab, runbook: Path, tmp: Path, *extra: str
                       ) -> tuple[int, dict[str, Any], list[dict[str, Any]], Any]:
    client = HttpClient(f"{lab.url}/transfers/drdrill-reference", tmp / "client.jsonl",
                        interval_s=CLIENT_INTERVAL_S, timeout_s=2.0)
    client.start()
    try:
        done, record, events = lab.run(runbook, *extra)
        time.sleep(0.3)  # a few attempts after the run's last probe
    finally:
        log = client.stop()
    return done.returncode, record, events, log


def _assert_outage_agrees(record: dict[str, Any], events: list[dict[str, Any]],
                          log: Any) -> tuple[float, float]:
    """drdrill's disaster outage and the client's, on the wall clock; returns both lengths."""
    res = record["results"]
    began = on_wall(events, res["disaster_started_mono"])
    start = on_wall(events, res["first_failure_after_t0_mono"])
    end = on_wall(events, res["service_restored_mono"])
    assert began is not None and start is not None and end is not None, res
    client = [o for o in log.outages(since=began) if o.start < end + 1.0]
    assert client, "the independent client saw no outage: the fault did nothing?"
    first = client[0]
    assert first.end is not None, "the client never saw the service back"
    print(f"\noutage start: drdrill - client {start - first.start:+.3f}s, "
          f"end {end - first.end:+.3f}s (tolerance {TOLERANCE_S:.2f}s)")
    seen = (first, client, start, end, res["outages"])
    assert abs(first.start - start) <= TOLERANCE_S, seen
    assert abs(first.end - end) <= TOLERANCE_S, seen
    assert res["downtime_s"] == pytest.approx(end - start, abs=0.002)
    assert res["rto_s"] <= res["downtime_s"] + 0.001  # T0 can be no earlier than the outage
    return end - start, first.end - first.start


def _assert_no_loss(record: dict[str, Any]) -> None:
    res = record["results"]
    assert res["rpo_basis"] == "acknowledged_writes", res
    assert record["canary"]["acked"] > 10, record["canary"]
    assert res["lost_writes"] == 0 and res["rpo_s"] == 0.0, res


def test_lab_status_shows_the_service(lab: ServiceLab) -> None:
    done = lab.cli("lab", "status", "--primary-port", "58703", "--standby-port", "58704")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "service http://127.0.0.1:58751" in done.stdout
    lines = {line.split()[0]: line for line in done.stdout.splitlines()
             if line.strip().startswith("site-")}
    assert "running" in lines["site-a"] and "1.0.0" in lines["site-a"], done.stdout
    assert "UP (active)" in lines["site-a"] and "UP (backup)" in lines["site-b"], done.stdout
    service = lab.env["service"]
    assert service["fallback_urls"] == ["http://127.0.0.1:58722", "http://127.0.0.1:58723"]


def test_site_a_killed(lab: ServiceLab, tmp_path: Path) -> None:
    code, record, events, log = _drill_with_client(lab, RUNBOOK, tmp_path)
    assert code == 0, record.get("reason")
    assert record["results"]["t0_source"] in ("first_failed_probe", "t0_task")
    ours, theirs = _assert_outage_agrees(record, events, log)
    print(f"\nkill: drdrill outage {ours:.3f}s, client {theirs:.3f}s, "
          f"RTO {record['results']['rto_s']:.3f}s")
    _assert_no_loss(record)
    # failback: clients are on site A again; any outage it caused is a separate entry
    assert log.last_site() == "site-a"
    outages = record["results"]["outages"]
    assert outages[0]["step"] == "site A fails", outages
    assert all(o["end_s"] is not None for o in outages), outages


def test_site_a_frozen(lab: ServiceLab, tmp_path: Path) -> None:
    """The second variant: site A's process is SIGSTOPped, so connections to it hang (its
    network path is blocked); HAProxy's check timeout takes it out."""
    code, record, events, log = _drill_with_client(lab, RUNBOOK, tmp_path,
                                                   "-e", "site_fault=freeze")
    assert code == 0, record.get("reason")
    ours, theirs = _assert_outage_agrees(record, events, log)
    print(f"\nfreeze: drdrill outage {ours:.3f}s, client {theirs:.3f}s, "
          f"RTO {record['results']['rto_s']:.3f}s")
    _assert_no_loss(record)
    assert log.last_site() == "site-a"
    assert lab.site_versions() == {"site-a": "1.0.0", "site-b": "1.0.0"}


def _standby_variant(base: Path) -> Path:
    """The shipped runbook with the fault aimed at site B (the standby): clients must stay
    on site A throughout. The playbooks are the shipped ones (a symlinked playbooks/)."""
    data = yaml.safe_load(RUNBOOK.read_text())
    data["name"] = "site-failover-standby"
    steps = data["steps"]
    fault = next(s for s in steps if s.get("disaster"))
    fault.update(name="site B fails", role="standby_site")
    data["steps"] = [s for s in steps if s.get("wait_for") != "served_by_standby"]
    for step in data["steps"]:
        if step.get("playbook") == "service-site-restore.yml":
            step["role"] = "standby_site"
    data["rollback"]["steps"][0]["role"] = "standby_site"
    (base / "drills").mkdir()
    (base / "playbooks").symlink_to(ROOT / "playbooks")
    path = base / "drills" / "site-failover-standby.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_standby_killed_leaves_the_service_up(lab: ServiceLab, tmp_path: Path) -> None:
    code, record, events, log = _drill_with_client(lab, _standby_variant(tmp_path), tmp_path)
    res = record["results"]
    assert code == 0, record.get("reason")
    assert res["outages"] == [] and res["downtime_s"] == 0.0, res
    assert res["rto_s"] == 0.0 and res["rto_met"] is True, res
    began = on_wall(events, res["disaster_started_mono"])
    assert began is not None
    assert log.outages(since=began) == [], "the independent client saw an outage"
    assert {a.site for a in log.attempts if a.ok} == {"site-a"}
    fault = next(s for s in record["steps"] if s["name"] == "site B fails")
    assert fault["status"] == "ok"
    run_dir = lab.runs / str(record["run_id"])
    report = lab.cli("report", str(run_dir), "--format", "md")
    assert report.returncode == 0, report.stderr
    after = (run_dir / "report.md").read_text().split("Outages seen by the service probe")[1]
    assert after.split("##")[0].strip().endswith("None recorded."), after[:300]


def test_lab_down_leaves_no_process(lab: ServiceLab) -> None:
    done = lab.cli("lab", "down", "--primary-port", "58703", "--standby-port", "58704")
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 5
    while leftovers(lab.config.lab_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(lab.config.lab_dir) == []
    assert lab.cli("lab", "status", "--primary-port", "58703",
                   "--standby-port", "58704").returncode == 1
