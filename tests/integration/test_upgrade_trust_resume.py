"""SIGKILL of ``drdrill run drills/upgrade-rollback.yml`` inside the deploy of N+1, then
``drdrill resume``; that resume SIGKILLed inside the rollback's redeploy of N, then resumed
again — on the lab with its service, the SHIPPED runbook and playbooks.

A step in flight when drdrill died is not idempotent for drdrill to guess: without
``--assume`` (and no terminal) resume refuses with exit 2, names the step, and executes
nothing. With ``--assume redo`` it re-runs that step (the rolling deploy is idempotent:
``start SITE --version V`` is a no-op on a site already there) and goes on: the rollback
completes, record.rollback says so (status ok, timed), the verifications of N pass, the
probes and the canary run again for the resumed rollback (its loss is measured: 0), and the
service serves N from both sites — checked by an independent HTTP client and by asking
each site itself. The run's evidence verifies.

Ports (this module only): PostgreSQL 58351/58352, HAProxy 58353, sites 58354/58355.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crashkit import cli, live_processes
from sitekit import (
    Lines,
    assert_whole,
    in_flight,
    journal,
    lab_env,
    new_run_dir,
    no_false_loss,
    runs_now,
    signal_at,
    start_run,
    step_started,
)

from drdrill.journal.verify import verify_run
from drdrill.lab.service.lab import ServicePorts
from harness.http_client import HttpClient
from harness.service_lab import (
    DRDRILL,
    ROOT,
    ServiceLab,
    service_lab,
    skip_without_haproxy,
)
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

RUNBOOK = ROOT / "drills" / "upgrade-rollback.yml"
DEPLOY = "deploy N+1, one site at a time"
REDEPLOY = "rollback - deploy N again, one site at a time"

skip_without_postgres()
skip_without_haproxy()


@pytest.fixture(scope="module")
def lab() -> Iterator[ServiceLab]:
    with service_lab("upgrade-resume", (58351, 58352), ServicePorts(58353, 58354, 58355)
                     ) as lab:
        yield lab


def _deployed_a(lines: Lines) -> bool:
    """Site A is switched to N+1 (its wait for HAProxy began): the kill lands mid-deploy."""
    return any(e.get("type") == "task" and e["data"].get("step") == DEPLOY
               and e["data"].get("event") == "playbook_on_task_start"
               and str(e["data"].get("task", "")).startswith("Wait until") for e in lines)


def _resume(lab: ServiceLab, run_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(DRDRILL), "resume", str(run_dir), *extra], cwd=ROOT,
                            env=lab_env(lab), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(900)  # three drdrill processes, two rolling deploys under load
def test_killed_in_deploy_and_in_rollback_resumes_to_a_complete_rollback(
        lab: ServiceLab) -> None:
    client = HttpClient(f"{lab.url}/transfers/drdrill-reference",
                        lab.base / "client-resume.jsonl", interval_s=0.02, timeout_s=2.0)
    client.start()
    env = lab_env(lab)
    before = runs_now(lab)
    proc = start_run(lab, RUNBOOK)
    procs = [proc]
    try:
        run_dir = new_run_dir(lab, before)
        # 1. SIGKILL inside the deploy of N+1, after site A's switch
        seen = signal_at(proc, run_dir, _deployed_a, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert in_flight(seen) == [f"main: {DEPLOY}"], in_flight(seen)
        problems = verify_run(run_dir).problems
        assert len(problems) == 1 and "record.json: missing" in problems[0], problems
        # without --assume: a clear refusal naming the step and the next command
        raw = (run_dir / "journal.jsonl").read_bytes()
        refused = cli("resume", str(run_dir), "--yes", cwd=ROOT, env=env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert DEPLOY in refused.stderr and "--assume" in refused.stderr, refused.stderr
        assert (run_dir / "journal.jsonl").read_bytes() == raw  # nothing executed
        # 2. resume --assume redo, SIGKILLed inside the rollback's redeploy of N
        offset = len(journal(run_dir))
        second = _resume(lab, run_dir, "--assume", "redo", "--yes")
        procs.append(second)
        signal_at(second, run_dir,  # signal 0: only wait for the trigger
                  lambda lines: step_started(lines[offset:], REDEPLOY, "rollback"), 0)
        time.sleep(1.0)  # inside the redeploy, not at its first line
        second.send_signal(signal.SIGKILL)
        second.communicate(timeout=30)
        refused = cli("resume", str(run_dir), "--yes", cwd=ROOT, env=env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"rollback step {REDEPLOY!r} was running when drdrill died" in refused.stderr
        # 3. the last resume completes the rollback
        done = cli("resume", str(run_dir), "--assume", "redo", "--yes", cwd=ROOT, env=env,
                   timeout=400)
        time.sleep(0.3)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        log = client.stop()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])  # N+1 failed
    record = json.loads((run_dir / "record.json").read_text())
    events = journal(run_dir)
    rollback = record["rollback"]
    assert rollback["status"] == "ok", rollback
    assert "verify N+1 answers as clients expect" in rollback["reason"], rollback
    assert rollback["duration_s"] == pytest.approx(
        rollback["finished_s"] - rollback["started_s"], abs=1e-5)
    rows = {s["name"]: s["status"] for s in record["steps"] if s["phase"] == "rollback"}
    assert rows == {REDEPLOY: "ok", "rollback - verify N answers as clients expect": "ok",
                    "rollback - verify the standby site answers as N": "ok"}, rows
    started = [e for e in events if e["type"] == "rollback_started"]
    assert len(started) == 1  # announced once, resumed, not restarted
    assert [e["data"]["status"] for e in events if e["type"] == "rollback_finished"] == ["ok"]
    assert len([e for e in events if e["type"] == "resumed"]) == 2
    loss = no_false_loss(lab, record, events)
    # the probes and the canary ran again for the resumed rollback, and the canary was read
    # back after it: the loss is measured, not "not measured" for want of a read-back
    res = record["results"]
    assert res["rpo_basis"] == "acknowledged_writes" and res["lost_writes"] == 0, res
    assert [e for e in events if e["type"] == "canary_readback"][-1]["data"]["ok"] is True
    assert cli("verify", str(run_dir), cwd=ROOT, env=env).returncode == 0
    assert not live_processes(f"{run_dir.resolve()}/")
    assert_whole(lab)  # N on both sites, HAProxy routing, clients on site A
    last = log.attempts[-5:]
    assert len(last) == 5 and all(a.ok for a in last), last
    print(f"\nkilled in deploy + in rollback, resumed twice: rollback {rollback['status']} "
          f"in {rollback['duration_s']:.1f}s, deploy started -> N verified "
          f"{rollback['from_disaster_s']:.1f}s; lost writes {loss}")
