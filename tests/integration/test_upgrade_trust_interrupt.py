"""Ctrl-C inside the steps of the SHIPPED drills/upgrade-rollback.yml, on the lab with its
service: ``drdrill run drills/upgrade-rollback.yml -i inventory.example.yml --yes`` runs as a
subprocess; the test polls its journal.jsonl and sends SIGINT as soon as the step's
``step_started`` line appears — in the rolling deploy of N+1, in a verification, and inside
the on-failure rollback itself (its redeploy of N, its verification of N).

Each time: exit 3 (aborted by the operator); no false loss — drdrill's lost_writes equals
the acknowledged canary writes missing from the database (none), or is null with a reason;
record.rollback says what the rollback did; and afterwards the service serves version N
from a healthy site — both sites on N behind HAProxy — after the rollback alone, or after
``drdrill lab repair``. An independent HTTP client (tests/harness/http_client.py) reads a
transfer through HAProxy throughout and, like a real client, needs ``amount_cents``: its
last answers must be right.

Ports (this module only): PostgreSQL 58341/58342, HAProxy 58343, sites 58344/58345.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sitekit import (
    assert_back_on_site_a,
    back_to_whole,
    in_flight,
    new_run_dir,
    no_false_loss,
    signal_at,
    step_started,
    watched_run,
)

from drdrill.lab.service.lab import ServicePorts
from harness.service_lab import ROOT, ServiceLab, service_lab, skip_without_haproxy
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

RUNBOOK = ROOT / "drills" / "upgrade-rollback.yml"
# the deploy and the rollback's redeploy (the recovery); the two verification steps passed
# here too but do not fit CI's 40-minute budget
CASES = [("deploy N+1, one site at a time", "main"),
         ("rollback - deploy N again, one site at a time", "rollback")]

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Iterator[ServiceLab]:
    with service_lab("upgrade-interrupt", (58341, 58342), ServicePorts(58343, 58344, 58345)
                     ) as lab:
        yield lab


@pytest.mark.timeout(600)  # a run, its rollback and maybe a repair, on a loaded machine
@pytest.mark.parametrize(("step", "phase"), CASES)
def test_ctrl_c_inside_step(lab: ServiceLab, tmp_path: Path, step: str, phase: str) -> None:
    started = time.monotonic()
    with watched_run(lab, tmp_path / "client.jsonl", RUNBOOK) as watched:
        proc = watched.proc
        run_dir = new_run_dir(lab, watched.before)
        seen = signal_at(proc, run_dir, lambda lines: step_started(lines, step, phase),
                         signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 3, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        record = json.loads((run_dir / "record.json").read_text())
        assert record["status"] == "aborted", (record["status"], record.get("reason"))
        assert "interrupted by the operator" in str(record.get("reason")), record.get("reason")
        lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
        loss = no_false_loss(lab, record, lines)
        rollback = record["rollback"]
        rows = [s["status"] for s in record["steps"] if s["phase"] == "rollback"]
        if rollback is not None and rollback.get("status") == "ok":
            assert rows and all(r == "ok" for r in rows), rows
        came_back = back_to_whole(lab)
        time.sleep(0.3)
    assert_back_on_site_a(watched, run_dir)
    print(f"\n{phase} {step}: landed in {in_flight(seen) or 'between steps'}; exit 3; "
          f"rollback {rollback and rollback.get('status')} {rows}; came back by "
          f"{came_back}; lost writes {loss}; {time.monotonic() - started:.1f}s")
