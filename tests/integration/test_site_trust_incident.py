"""Incident mode for drills/site-failover.yml on the lab with its service: site A is already
dead — killed, or frozen (its network path blocked) — when the on-call engineer runs
``drdrill run drills/site-failover.yml --mode incident --declared-at <fault instant>``.

The truth is an independent HTTP client (tests/harness/http_client.py, its own process)
reading a transfer through HAProxy every 20 ms from before the fault, and the store itself
(site B's own API and the database). The run must start with site A dead, find clients on
site B, and report the RTO from the declared instant: measured when drdrill's probe saw the
service down first, else — HAProxy moved clients before drdrill looked — an upper bound
(``rto_bound_s``) that the client's restoration must lie within, never a made-up number.
Every canary write drdrill says was acknowledged must be in site B's store. Afterwards
``drdrill lab repair`` brings site A back (the follow-up work) and clients return to it.

Ports (this module only): PostgreSQL 58321/58322, HAProxy 58323, sites 58324/58325.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sitekit import (
    acked_references,
    assert_whole,
    db_store,
    journal,
    repair,
    site_store,
)

from drdrill.lab.service.lab import ServicePorts
from harness.http_client import ClientLog, HttpClient
from harness.service_lab import (
    ROOT,
    ServiceLab,
    on_wall,
    service_lab,
    skip_without_haproxy,
)
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

RUNBOOK = ROOT / "drills" / "site-failover.yml"
INVENTORY = ROOT / "inventory.example.yml"
PROBE_INTERVAL_S = 0.1  # the runbook's service.interval
CLIENT_INTERVAL_S = 0.02
SLACK_S = 0.12  # an attempt in flight + scheduling on a loaded 2-core machine
TOLERANCE_S = PROBE_INTERVAL_S + CLIENT_INTERVAL_S + SLACK_S
INCIDENT_STEPS = ["the standby site is up", "clients are served by site B"]

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Iterator[ServiceLab]:
    with service_lab("site-incident", (58321, 58322), ServicePorts(58323, 58324, 58325)) as lab:
        yield lab


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def _incident(lab: ServiceLab, tmp: Path, fault: str, wait_s: float
              ) -> tuple[int, dict[str, Any], list[dict[str, Any]], ClientLog, float]:
    """Fault site A outside drdrill, wait, run the incident; (rc, record, journal, client
    log, the fault instant)."""
    client = HttpClient(f"{lab.url}/transfers/drdrill-reference", tmp / "client.jsonl",
                        interval_s=CLIENT_INTERVAL_S, timeout_s=2.0)
    client.start()
    try:
        time.sleep(0.3)
        pid = int((lab.config.lab_dir / "service" / "site-a.pid").read_text().split()[0])
        faulted = time.time()
        os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)  # the instant
        time.sleep(wait_s)  # the engineer is paged and opens the runbook
        done = lab.cli("run", str(RUNBOOK), "-i", str(INVENTORY), "--mode", "incident",
                       "--declared-at", _iso(faulted), "--yes", "--json", timeout=300)
        time.sleep(0.3)
    finally:
        log = client.stop()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    record = json.loads(done.stdout)
    return done.returncode, record, journal(lab.runs / record["run_id"]), log, faulted


def _assert_started_and_moved(code: int, record: dict[str, Any], log: ClientLog,
                              faulted: float) -> float:
    """The run started with site A dead, ran the incident steps only, all ok; the client saw
    the outage begin at the fault and end on site B. Returns the client's restoration."""
    assert code == 1, record.get("reason")  # completed; RPO cannot be measured (incident)
    assert [s["name"] for s in record["steps"]] == INCIDENT_STEPS, record["steps"]
    assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
    assert record["reason"].startswith("RPO not measured"), record["reason"]
    outages = log.outages(since=faulted - 0.05)
    assert outages, "the independent client saw no outage: the fault did nothing?"
    first = outages[0]
    assert first.start - faulted <= CLIENT_INTERVAL_S + SLACK_S, (first, faulted)
    assert first.end is not None, "the client never saw the service back"
    after = [a for a in log.attempts if a.ok and a.start_wall >= first.end]
    assert after and {a.site for a in after} == {"site-b"}, {a.site for a in after}
    return first.end


def _assert_rto(record: dict[str, Any], events: list[dict[str, Any]], faulted: float,
                client_restored: float) -> str:
    """RTO from the declared instant: measured and equal to the client's, or a bound that
    holds the client's restoration — never both, never neither."""
    res = record["results"]
    assert res["t0_source"] == "declared"
    t0 = on_wall(events, res["t0_mono"])
    assert t0 == pytest.approx(faulted, abs=0.002)
    truth = client_restored - faulted
    first_probe = min(float(e["data"].get("started_mono", e["mono"]))
                      for e in events if e["type"] == "probe")
    if res["rto_basis"] == "bound":
        assert res["rto_s"] is None and res["downtime_s"] is None, res
        assert res["rto_bound_s"] == pytest.approx(first_probe - res["t0_mono"], abs=0.002)
        assert res["rto_bound_s"] >= truth - CLIENT_INTERVAL_S, (res["rto_bound_s"], truth)
        assert res["rto_met"] is True and "upper bound" in res["rto_reason"], res
        return f"bound {res['rto_bound_s']:.3f}s (client restored at {truth:.3f}s)"
    assert res["rto_basis"] == "measured", res
    restored = on_wall(events, res["service_restored_mono"])
    assert restored is not None
    assert abs(restored - client_restored) <= TOLERANCE_S, (restored, client_restored)
    assert res["rto_s"] == pytest.approx(restored - faulted, abs=0.002)
    assert res["rto_bound_s"] is None
    return f"measured {res['rto_s']:.3f}s (client {truth:.3f}s)"


def _assert_no_false_loss(lab: ServiceLab, record: dict[str, Any],
                          events: list[dict[str, Any]]) -> int:
    """Every acknowledged canary write is in site B's store and in the database, and
    drdrill's lost_writes says exactly that; the RPO of the outage itself is not measured."""
    res = record["results"]
    acked = acked_references(events, record["run_id"])
    prefix = f"drdrill-canary-{record['run_id']}-"
    assert acked, "the canary got no write acknowledged after the failover"
    b_store = site_store(str(lab.env["service"]["sites"]["site-b"]["url"]), prefix)
    assert acked <= b_store, sorted(acked - b_store)
    assert acked <= db_store(lab, prefix)
    assert res["lost_writes"] == 0 and res["acked_writes"] == len(acked), res
    assert res["rpo_basis"] == "not_measured" and res["rpo_s"] is None, res
    assert "incident mode" in res["rpo_reason"]
    return len(acked)


def _repair_brings_site_a_back(lab: ServiceLab) -> None:
    done = repair(lab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "started site-a on version 1.0.0" in done.stdout or "thawed site-a" in done.stdout
    assert_whole(lab)


def test_incident_site_a_killed(lab: ServiceLab, tmp_path: Path) -> None:
    code, record, events, log, faulted = _incident(lab, tmp_path, "kill", wait_s=3.0)
    client_restored = _assert_started_and_moved(code, record, log, faulted)
    rto = _assert_rto(record, events, faulted, client_restored)
    acked = _assert_no_false_loss(lab, record, events)
    # HAProxy moved clients ~1.3 s after the kill, before the engineer's run (3 s later)
    assert record["results"]["rto_basis"] == "bound"
    print(f"\nincident kill: RTO {rto}; {acked} acked canary writes all in site B's store")
    _repair_brings_site_a_back(lab)


def test_incident_site_a_frozen(lab: ServiceLab, tmp_path: Path) -> None:
    """Frozen, and the run starts at once: whether drdrill's first probe still sees the
    outage depends on how fast it starts here; either way the number must be the truth."""
    code, record, events, log, faulted = _incident(lab, tmp_path, "freeze", wait_s=0.0)
    client_restored = _assert_started_and_moved(code, record, log, faulted)
    rto = _assert_rto(record, events, faulted, client_restored)
    acked = _assert_no_false_loss(lab, record, events)
    print(f"\nincident freeze: RTO {rto}; {acked} acked canary writes all in site B's store")
    _repair_brings_site_a_back(lab)
