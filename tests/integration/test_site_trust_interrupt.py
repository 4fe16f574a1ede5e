"""Ctrl-C inside each step of the SHIPPED drills/site-failover.yml, on the lab with its
service: ``drdrill run drills/site-failover.yml -i inventory.example.yml --yes`` runs as a
subprocess; the test polls its journal.jsonl and sends SIGINT as soon as the step's
``step_started`` line appears (kill and freeze faults).

Each time: exit 3 (aborted) — or, when the signal came as the last step (a 0.1 s wait)
ended, exit 0 with every step ok: nothing was left to interrupt; no false loss — drdrill's
lost_writes equals the acknowledged canary writes missing from the database (none: both
sites write to one database), or is null with a reason; and afterwards the service is
whole — both sites on version N, HAProxy routing to them, clients served by site A —
after the rollback alone, or after ``drdrill lab repair``. An independent HTTP client
(tests/harness/http_client.py) reads a transfer through HAProxy throughout; its last
answers must be right (version N).

Ports (this module only): PostgreSQL 58331/58332, HAProxy 58333, sites 58334/58335.
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

RUNBOOK = ROOT / "drills" / "site-failover.yml"
# the RTO path: the fault (killed and frozen) and the wait for site B. The pre-check and the
# two failback steps passed here too (rollback alone each time) but do not fit CI's budget.
CASES = [("site A fails", "kill"), ("site A fails", "freeze"),
         ("clients are served by site B", "freeze")]
LAST_STEP = "failback - clients are served by site A again"  # a 0.1 s wait

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Iterator[ServiceLab]:
    with service_lab("site-interrupt", (58331, 58332), ServicePorts(58333, 58334, 58335)
                     ) as lab:
        yield lab


@pytest.mark.timeout(600)  # a run, its rollback and maybe a repair, on a loaded machine
@pytest.mark.parametrize(("step", "fault"), CASES)
def test_ctrl_c_inside_step(lab: ServiceLab, tmp_path: Path, step: str, fault: str) -> None:
    started = time.monotonic()
    with watched_run(lab, tmp_path / "client.jsonl", RUNBOOK, "-e", f"site_fault={fault}"
                     ) as watched:
        proc = watched.proc
        run_dir = new_run_dir(lab, watched.before)
        seen = signal_at(proc, run_dir, lambda lines: step_started(lines, step),
                         signal.SIGINT)
        out, _ = proc.communicate(timeout=240)
        assert "Traceback" not in out, out[-3000:]
        record = json.loads((run_dir / "record.json").read_text())
        if proc.returncode == 0:  # the last step (a 0.1 s wait) ended as the signal came:
            assert step == LAST_STEP, out[-3000:]  # nothing was left to interrupt
            assert record["status"] == "passed", record["status"]
            assert all(s["status"] == "ok" for s in record["steps"]), record["steps"]
        else:
            assert proc.returncode == 3, out[-3000:]
            assert record["status"] == "aborted", record["status"]
        lines = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
        loss = no_false_loss(lab, record, lines)
        rollback = [s["status"] for s in record["steps"] if s["phase"] == "rollback"]
        came_back = back_to_whole(lab)
        time.sleep(0.3)
    assert_back_on_site_a(watched, run_dir)
    print(f"\n{step} ({fault}): landed in {in_flight(seen) or 'between steps'}; "
          f"exit {proc.returncode}; "
          f"rollback {rollback}; came back by {came_back}; lost writes {loss}; "
          f"{time.monotonic() - started:.1f}s")
