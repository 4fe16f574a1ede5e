"""drills/upgrade-rollback.yml end to end on the lab with its service (``--with service``,
started with the CLI here): version N+1 is deployed one site at a time, the verification
catches its incompatible answer, the on-failure rollback redeploys N and verifies it.

The truth is an independent HTTP client (tests/harness/http_client.py: own process, loop,
timeout and log) that reads a transfer through HAProxy every 20 ms and, like a real client,
counts an answer without ``amount_cents`` as a failure. Its outage — from the first broken
answer after the deploy began to the answer that is right again — must match drdrill's
downtime within one probe interval plus its own interval (and SLACK_S of scheduling).

Ports (this module only): PostgreSQL 58705/58706, HAProxy 58760, sites 58761/58762.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

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

RUNBOOK = ROOT / "drills" / "upgrade-rollback.yml"
PROBE_INTERVAL_S = 0.1
CLIENT_INTERVAL_S = 0.02
SLACK_S = 0.12  # an attempt in flight when the fault hit (~50 ms here) + scheduling
TOLERANCE_S = PROBE_INTERVAL_S + CLIENT_INTERVAL_S + SLACK_S
VERIFICATIONS = ("verify N+1 answers as clients expect",
                 "verify the standby site answers as clients expect")

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Any:
    with service_lab("upgrade-rollback", (58705, 58706), ServicePorts(58760, 58761, 58762),
                     via_cli=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def drill(lab: ServiceLab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the shipped runbook, watched by the independent client."""
    client = HttpClient(f"{lab.url}/transfers/drdrill-reference",
                        tmp_path_factory.mktemp("client") / "client.jsonl",
                        interval_s=CLIENT_INTERVAL_S, timeout_s=2.0)
    client.start()
    try:
        done, record, events = lab.run(RUNBOOK)
        time.sleep(0.3)
    finally:
        log = client.stop()
    return {"done": done, "record": record, "events": events, "log": log}


def test_verification_catches_n_plus_1(drill: dict[str, Any]) -> None:
    record = drill["record"]
    assert drill["done"].returncode == 1, drill["done"].stdout[-2000:]  # a verification failed
    assert record["status"] == "failed"
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["deploy N+1, one site at a time"]["status"] == "ok"
    for name in VERIFICATIONS:
        assert steps[name]["status"] == "failed", steps[name]
        assert steps[name]["verification"] is True
        assert '"amount": "1.00"' in steps[name]["error"], steps[name]["error"]
        assert '"version": "1.1.0"' in steps[name]["error"]
    assert record["results"]["data_verified"] is False


def test_rollback_restores_n_and_is_timed(drill: dict[str, Any], lab: ServiceLab) -> None:
    record = drill["record"]
    rollback = record["rollback"]
    assert rollback["status"] == "ok", rollback
    assert "verify N+1 answers as clients expect" in rollback["reason"]
    rows = [s for s in record["steps"] if s["phase"] == "rollback"]
    assert [s["status"] for s in rows] == ["ok", "ok", "ok"], rows
    deploy = next(s for s in record["steps"] if s["name"] == "deploy N+1, one site at a time")
    verified = record["checkpoint_offsets_s"]["n_verified_standby"]
    assert rollback["duration_s"] == pytest.approx(
        rollback["finished_s"] - rollback["started_s"], abs=1e-5)
    # "deploy started" -> "N verified again": the deploy step's start to the rollback's end
    assert rollback["from_disaster_s"] == pytest.approx(
        rollback["finished_s"] - deploy["start_s"], abs=1e-5)
    assert deploy["start_s"] < verified <= rollback["finished_s"]
    assert lab.site_versions() == {"site-a": "1.0.0", "site-b": "1.0.0"}
    assert drill["log"].attempts[-1].ok, "the client's last answers must be right again (N)"
    print(f"\nrollback {rollback['duration_s']:.3f}s; deploy started -> N verified "
          f"{rollback['from_disaster_s']:.3f}s")


def test_outage_matches_the_independent_client(drill: dict[str, Any]) -> None:
    record, events, log = drill["record"], drill["events"], drill["log"]
    res = record["results"]
    began = on_wall(events, res["disaster_started_mono"])
    start = on_wall(events, res["first_failure_after_t0_mono"])
    end = on_wall(events, res["service_restored_mono"])
    assert began is not None and start is not None and end is not None, res
    outages = log.outages(since=began)
    assert outages, "the client saw no broken answer: was N+1 deployed?"
    assert all(o.end is not None for o in outages), outages
    client_start, client_end = outages[0].start, max(o.end for o in outages if o.end)
    print(f"\noutage start: drdrill - client {start - client_start:+.3f}s, "
          f"end {end - client_end:+.3f}s (tolerance {TOLERANCE_S:.2f}s)")
    assert abs(client_start - start) <= TOLERANCE_S, (client_start, start)
    assert abs(client_end - end) <= TOLERANCE_S, (client_end, end)
    # the service came back during the rollback, not before it
    rollback_start = on_wall(events, record["rollback"]["started_s"])
    assert rollback_start is not None and end > rollback_start
    assert res["outages"] and res["outages"][0]["step"] == "deploy N+1, one site at a time"
    assert res["downtime_s"] == pytest.approx(end - start, abs=0.002)
    assert res["lost_writes"] == 0 and record["canary"]["acked"] > 10, record["canary"]
    print(f"\nRTO {res['rto_s']:.3f}s, downtime {res['downtime_s']:.3f}s, client "
          f"{client_end - client_start:.3f}s; outages {len(res['outages'])}")


def test_report_shows_the_deviation(drill: dict[str, Any], lab: ServiceLab) -> None:
    run_dir = lab.runs / str(drill["record"]["run_id"])
    done = lab.cli("report", str(run_dir), "--format", "md")
    assert done.returncode == 0, done.stderr
    text = (run_dir / "report.md").read_text()
    deviations = text.split("## 7. Problems and deviations")[1].split("## 8.")[0]
    assert "'verify N+1 answers as clients expect' failed" in deviations
    assert "rollback ran (policy: on-failure" in deviations and ": ok in " in deviations
    assert "rollback - deploy N again, one site at a time (rollback)" in text


def test_lab_down_leaves_no_process(lab: ServiceLab) -> None:
    done = lab.cli("lab", "down", "--primary-port", "58705", "--standby-port", "58706")
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 5
    while leftovers(lab.config.lab_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(lab.config.lab_dir) == []
