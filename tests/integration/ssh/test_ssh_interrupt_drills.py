"""Interrupting the SHIPPED failover drill (drills/postgres-failover.yml, unedited) over SSH,
as an operator would: ``drdrill run`` is a real process, signalled from outside, against a
PostgreSQL primary in namespace db1 and its standby in db2 (fresh pair per test).

- Ctrl-C (SIGINT) while the ``fence and promote`` group runs (fence's ansible-playbook
  mid-task, the promote's psql on db2 over the run's paramiko session);
- Ctrl-C while ``wait for service`` runs;
- SIGKILL of drdrill inside ``promote the standby``, then ``drdrill resume --assume redo``.

Each test checks the exit code; that nothing of the run is left, on the orchestrator (ssh,
ansible-playbook, the command step's processes, ControlPersist masters) nor on the hosts
(only the listening sshd and postgres remain in each namespace); that no write is reported
lost that the database still holds (lost_writes = acknowledged canary writes missing from
the canary table, or null with a reason; a loss only when the independent writer lost
one too); and that drdrill's outage agrees with an independent writer process
(tests/harness/writer.py) within the probe interval plus the writer's. An interrupted run
that leaves the roles swapped says what to run next on SSH hosts, not only on the lab.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # crashkit, in tests/integration
from crashkit import Lines, after_event, after_task, cli, signal_when, start, wait_gone  # noqa: E402

from harness.drills import control_dir, pg_inventory, service_dsn, ssh_leftovers  # noqa: E402
from harness.netns import NetnsHarness  # noqa: E402
from harness.pg import PgPair, missing_postgres  # noqa: E402
from harness.writer import IndependentWriter, WriterLog  # noqa: E402

pytestmark = pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))

ROOT = Path(__file__).resolve().parents[3]
DRILL = ROOT / "drills" / "postgres-failover.yml"
PROBE_INTERVAL_S = 0.2  # the shipped drill's service.interval
WRITER_INTERVAL_S = 0.05
SLACK_S = 0.15  # scheduling on a loaded 2-core machine
WIDE = {"COLUMNS": "1000"}  # the verdict's lines unwrapped: the test reads commands off them


def _started(step: str) -> Any:
    return after_event("step_started", name=step, phase="main")


def _run(harness: NetnsHarness, pg: PgPair, tmp_path: Path, trigger: Any,
         sig: int) -> tuple[Any, Path, Lines, IndependentWriter]:
    """Start the drill with an independent writer running; signal drdrill at ``trigger``."""
    inventory = pg_inventory(harness, pg, tmp_path / "inventory.yml")
    writer = IndependentWriter(service_dsn(pg), tmp_path / "writer.jsonl",
                               interval_s=WRITER_INTERVAL_S)
    writer.start()
    runs = tmp_path / "runs"
    proc = start("run", str(DRILL), "-i", str(inventory), "--yes", "--runs-dir", str(runs),
                 cwd=ROOT, env=WIDE)
    try:
        run_dir, lines = signal_when(proc, runs, trigger, sig=sig, deadline_s=120)
    except BaseException:
        writer.stop()
        raise
    return proc, run_dir, lines, writer


def _finish(proc: Any) -> tuple[int, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out + err


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def _canary_rows(pg: PgPair) -> set[int]:
    with psycopg.connect(service_dsn(pg), autocommit=True, connect_timeout=5) as conn:
        return {int(r[0]) for r in conn.execute("select seq from drdrill_canary")}


def _assert_no_false_loss(run_dir: Path, pg: PgPair, writer: IndependentWriter,
                          log: WriterLog) -> dict[str, Any]:
    results: dict[str, Any] = json.loads((run_dir / "record.json").read_text())["results"]
    acked = {int(e["data"]["seq"]) for e in _journal(run_dir)
             if e["type"] == "canary_write" and e["data"].get("acked")}
    missing = acked - _canary_rows(pg)
    if results["lost_writes"] is None:
        assert results["rpo_basis"] == "not_measured" and results["rpo_reason"], results
    else:
        assert results["lost_writes"] == len(missing), (results, sorted(missing))
        if results["lost_writes"]:
            assert log.acked - writer.rows(), ("a loss the independent writer did not see",
                                               results)
    return results


def _assert_outage_agrees(run_dir: Path, results: dict[str, Any], log: WriterLog,
                          extra_s: float = 0.0) -> tuple[float, float]:
    """drdrill's first outage (the failover's) against the writer's, on one time line (the
    run's offsets; both clocks are this host's). The restoration instants agree within the
    two sampling intervals (drdrill's may be later by ``extra_s``: a gap while it was dead
    never counts as uptime). The start may be earlier than the writer's: drdrill's probe
    opens a new connection per attempt, refused as soon as the crash begins, while the
    writer's kept connection still commits until the server is gone — but never before the
    disaster step began, nor later than the writer's first failure."""
    events = _journal(run_dir)
    origin = _wall_s(events[0]["wall"]) - float(events[0]["mono"])
    first = log.attempts[0]
    to_run = first.start_wall - first.start_mono - origin  # writer mono -> run offset
    theirs = next(o for o in log.outages() if o.end_mono is not None and o.failed_attempts > 1)
    their_start, their_end = theirs.start_mono + to_run, float(theirs.end_mono or 0) + to_run
    ours = results["outages"][0]
    assert ours["end_s"] is not None, results["outages"]  # seen restored (by the rollback)
    tolerance = PROBE_INTERVAL_S + WRITER_INTERVAL_S + SLACK_S
    assert their_end - tolerance <= ours["end_s"] <= their_end + tolerance + extra_s, \
        (ours, their_start, their_end)
    assert results["disaster_started_mono"] <= ours["start_s"] <= their_start + tolerance, \
        (ours, their_start, results["disaster_started_mono"])
    assert results["service_restored_mono"] == ours["end_s"], results
    if results.get("rto_s") is not None:
        assert results["rto_s"] == pytest.approx(ours["end_s"] - results["t0_mono"], abs=1e-3)
    return float(ours["duration_s"]), their_end - their_start


def _wall_s(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _host_leftovers(harness: NetnsHarness, timeout_s: float = 10.0) -> list[str]:
    """Processes in the namespaces other than each host's listening sshd and PostgreSQL:
    an sshd session, a psql, an ansible module still running there after the run."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = []
        for name in harness.hosts:
            listener = harness.host(name).sshd
            for pid in harness.ns_pids(name):
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                if stat[stat.rfind(")") + 2] == "Z" or comm == "postgres" or (
                        listener is not None and pid == listener.pid):
                    continue
                found.append(f"{name}: {pid} {comm}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _assert_nothing_left(harness: NetnsHarness, run_dir: Path) -> None:
    assert ssh_leftovers(str(harness.dir), control_dir(run_dir)) == []
    assert wait_gone(str(run_dir.resolve())) == []  # ansible trees, command steps
    assert _host_leftovers(harness) == []


def test_ctrl_c_inside_fence_and_promote_over_ssh(pg_hosts: tuple[NetnsHarness, PgPair],
                                                  tmp_path: Path) -> None:
    harness, pg = pg_hosts
    # the fence's ansible-playbook is running a task on db1; the promote runs beside it
    proc, run_dir, _, writer = _run(harness, pg, tmp_path,
                                    after_task("fence the old primary", ""), signal.SIGINT)
    try:
        rc, out = _finish(proc)
    finally:
        log = writer.stop()
    assert rc == 3, out
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "aborted"
    rollback = [s for s in record["steps"] if s["phase"] == "rollback"]
    assert [s["status"] for s in rollback] == ["ok", "ok"], rollback
    results = _assert_no_false_loss(run_dir, pg, writer, log)
    ours, theirs = _assert_outage_agrees(run_dir, results, log)
    # db2 is the primary now, db1 streams from it: the view says what to do next on hosts
    # that are not the lab (run the runbook's failback), not only `drdrill lab repair`
    assert "roles are swapped: db2 is now the primary" in out, out
    _assert_nothing_left(harness, run_dir)
    # ... and what it says works: db1 is the primary again, db2 streams from it
    command = [line.split("other hosts: ", 1)[1] for line in out.splitlines()
               if "next: other hosts: ansible-playbook" in line]
    assert len(command) == 1 and str(tmp_path / "inventory.yml") in command[0], out
    bindir = str(Path(sys.executable).parent)
    failback = subprocess.run(shlex.split(command[0]), capture_output=True, text=True,
                              timeout=180, env={**os.environ,
                                                "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert failback.returncode == 0, failback.stdout[-3000:] + failback.stderr[-2000:]
    assert pg.wait_streaming()["client_addr"] == harness.address("db2")
    print(f"\nCtrl-C in fence+promote: outage {ours:.2f}s (writer {theirs:.2f}s), "
          f"lost {results['lost_writes']} ({results['rpo_basis']})")


def test_ctrl_c_inside_wait_for_service_over_ssh(pg_hosts: tuple[NetnsHarness, PgPair],
                                                 tmp_path: Path) -> None:
    harness, pg = pg_hosts
    proc, run_dir, _, writer = _run(harness, pg, tmp_path, _started("wait for service"),
                                    signal.SIGINT)
    try:
        rc, out = _finish(proc)
    finally:
        log = writer.stop()
    assert rc == 3, out
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "aborted"
    promoted = [s for s in record["steps"] if s["name"] == "promote the standby"]
    assert [s["status"] for s in promoted] == ["ok"], promoted
    results = _assert_no_false_loss(run_dir, pg, writer, log)
    ours, theirs = _assert_outage_agrees(run_dir, results, log)
    with psycopg.connect(pg.standby.dsn(), autocommit=True, connect_timeout=5) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone() == (False,)
    _assert_nothing_left(harness, run_dir)
    print(f"\nCtrl-C in wait for service: outage {ours:.2f}s (writer {theirs:.2f}s), "
          f"RTO {results['rto_s']}, lost {results['lost_writes']} ({results['rpo_basis']})")


def test_sigkill_inside_promote_over_ssh_then_resume(pg_hosts: tuple[NetnsHarness, PgPair],
                                                     tmp_path: Path) -> None:
    harness, pg = pg_hosts
    proc, run_dir, _, writer = _run(harness, pg, tmp_path, _started("promote the standby"),
                                    signal.SIGKILL)
    try:
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        resumed = cli("resume", str(run_dir), "--assume", "redo", "--yes", cwd=ROOT,
                      env=WIDE, timeout=300)
    finally:
        log = writer.stop()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = _journal(run_dir)
    gap = [e["data"] for e in events if e["type"] == "resumed"]
    assert len(gap) == 1 and "promote the standby" in gap[0]["in_flight_steps"], gap
    gap_s = gap[0]["gap_end_mono"] - gap[0]["gap_start_mono"]
    record = json.loads((run_dir / "record.json").read_text())
    mains = [s["name"] for s in record["steps"] if s["phase"] == "main" and s["status"] == "ok"]
    assert "failback - switch back to pg1" in mains, record["steps"]
    results = _assert_no_false_loss(run_dir, pg, writer, log)
    ours, theirs = _assert_outage_agrees(run_dir, results, log, extra_s=gap_s)
    pg.wait_streaming()  # failed back: db1 primary again, db2 streaming from it
    _assert_nothing_left(harness, run_dir)
    print(f"\nSIGKILL in promote + resume: outage {ours:.2f}s (writer {theirs:.2f}s, gap "
          f"{gap_s:.2f}s), RTO {results['rto_s']}, lost {results['lost_writes']}")
