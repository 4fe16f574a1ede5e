"""Ctrl-C at the start of each RTO-path step of the SHIPPED failover drill, on a real lab.

For each step (crash the primary, fence the old primary, promote the standby, wait for
service) ``drdrill run drills/postgres-failover.yml -i inventory.example.yml --yes`` runs as
a subprocess; the test polls the run's journal.jsonl and sends SIGINT as soon as that step's
``step_started`` line appears. It then checks: exit 3 (aborted); no acknowledged write
reported lost unless an independent writer process (tests/harness/writer.py) also lost one,
and drdrill's lost_writes equals what the canary table on the database shows (or is null
with a reason: never a false loss); and the lab ends healthy with pg1 the primary — after
the rollback alone, or, when the rollback reports the roles swapped (and says
``next: drdrill lab repair``), after ``drdrill lab repair``. Which of the two was needed is
printed per step. Own lab on ports 57701/57702 under a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drdrill.errors import LabError
from drdrill.lab import LabConfig, lab_down, lab_status, lab_up, service_dsn
from harness.writer import IndependentWriter
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
DRDRILL = str(Path(sys.executable).parent / "drdrill")
PORTS = (57701, 57702)
STEPS = ["crash the primary", "fence the old primary", "promote the standby",
         "wait for service"]

skip_without_postgres()


@dataclass
class Lab:
    config: LabConfig
    base: Path
    env: dict[str, str]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    busy = [p for p in PORTS if not _port_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken; test_interrupt_drills needs 57701/57702 free")
    base = Path(tempfile.mkdtemp(prefix="drdrill-interrupt-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", *PORTS)
    env = {"DRDRILL_LAB_DIR": str(config.lab_dir), "DRDRILL_LOCK_DIR": str(base / "locks"),
           "DRDRILL_RUNS_DIR": str(base / "runs")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            _assert_pg1_primary(lab_up(config))
            yield Lab(config, base, {**os.environ, **env})
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _assert_pg1_primary(status: Any) -> None:
    assert status.healthy, status.to_json()
    assert status.primary is not None and status.primary.name == "pg1", status.to_json()


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return events


def _run_dir(runs: Path, before: set[Path], deadline: float) -> Path:
    while time.monotonic() < deadline:
        new = [p for p in runs.glob("*/journal.jsonl") if p.parent not in before] \
            if runs.is_dir() else []
        if new:
            return new[0].parent
        time.sleep(0.05)
    raise AssertionError("no run directory appeared")


def _interrupt_at(proc: subprocess.Popen[str], journal: Path, step: str,
                  deadline: float) -> None:
    """SIGINT as soon as the step's step_started line is in the journal."""
    while time.monotonic() < deadline and proc.poll() is None:
        for event in _journal_lines(journal):
            data = event.get("data", {})
            if event.get("type") == "step_started" and data.get("name") == step:
                proc.send_signal(signal.SIGINT)
                return
        time.sleep(0.02)
    raise AssertionError(f"step {step!r} never started (rc={proc.poll()})")


def _acked_canary(journal: Path) -> set[int]:
    return {int(e["data"]["seq"]) for e in _journal_lines(journal)
            if e.get("type") == "canary_write" and e["data"].get("acked")}


def _repair_if_left_broken(lab: Lab) -> None:
    status = lab_status(lab.config)
    if status.healthy and status.primary is not None and status.primary.name == "pg1":
        return
    subprocess.run([DRDRILL, "lab", "repair", "--primary-port", str(PORTS[0]),
                    "--standby-port", str(PORTS[1])], cwd=ROOT, env=lab.env,
                   capture_output=True, text=True, timeout=180, check=False)
    _assert_pg1_primary(lab_status(lab.config))


def _acked_canary_sent(journal: Path) -> dict[int, float]:
    return {int(e["data"]["seq"]): float(e["data"]["sent_mono"]) for e in _journal_lines(journal)
            if e.get("type") == "canary_write" and e["data"].get("acked")}


def _first_failed_canary_write(journal: Path) -> float | None:
    """When the canary first could not write after the disaster began: the old primary's
    death, as the canary saw it."""
    events = _journal_lines(journal)
    started = next((e["mono"] for e in events if e.get("type") == "step_started"
                    and e["data"].get("name") == STEPS[0]), None)
    if started is None:
        return None
    return next((float(e["data"]["sent_mono"]) for e in events
                 if e.get("type") == "canary_write" and not e["data"].get("acked")
                 and float(e["data"]["sent_mono"]) >= started), None)


def _table_rows(lab: Lab, table: str) -> set[int]:
    with psycopg.connect(service_dsn(lab.config), autocommit=True) as conn:
        return {int(r[0]) for r in conn.execute(f"select seq from {table}")}  # noqa: S608


@pytest.mark.parametrize("step", STEPS)
def test_ctrl_c_at_step_start_comes_back(lab: Lab, step: str) -> None:
    _repair_if_left_broken(lab)  # a failed earlier case must not fail the next ones too
    runs = lab.base / "runs"
    before = {p.parent for p in runs.glob("*/journal.jsonl")} if runs.is_dir() else set()
    writer = IndependentWriter(service_dsn(lab.config), lab.base / f"writer-{step[:5]}.jsonl")
    writer.start()
    started = time.monotonic()
    proc = subprocess.Popen(
        [DRDRILL, "run", "drills/postgres-failover.yml", "-i", "inventory.example.yml",
         "--yes"], cwd=ROOT, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        run_dir = _run_dir(runs, before, time.monotonic() + 60)
        _interrupt_at(proc, run_dir / "journal.jsonl", step, time.monotonic() + 90)
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log = writer.stop()
    assert proc.returncode == 3, out
    assert "stopping: " in out, out  # the view said at once that the Ctrl-C was seen
    record = json.loads((run_dir / "record.json").read_text())
    results = record["results"]
    writer_lost = log.acked - writer.rows()
    canary_lost = _acked_canary(run_dir / "journal.jsonl") - _table_rows(lab, "drdrill_canary")
    if results.get("lost_writes") is None:
        assert results.get("rpo_basis") == "not_measured" and results.get("rpo_reason"), results
    else:
        assert results["lost_writes"] == len(canary_lost), (results, sorted(canary_lost))
        if results["lost_writes"] and not writer_lost:
            # the database shows these canary rows missing, so the loss is real; the writer
            # may miss it only if it is the async replication window: acknowledged by the
            # old primary just before it died (before the first canary write that failed)
            died = _first_failed_canary_write(run_dir / "journal.jsonl")
            acked_at = _acked_canary_sent(run_dir / "journal.jsonl")
            assert died is not None and all(acked_at[s] < died for s in canary_lost), (
                "drdrill reports a loss the independent writer did not see, of writes not "
                "explained by the old primary's death", results, sorted(canary_lost), died)
    swapped = "roles are swapped" in out
    if swapped:
        assert "next: drdrill lab repair" in out, out
        repair = subprocess.run(
            [DRDRILL, "lab", "repair", "--primary-port", str(PORTS[0]),
             "--standby-port", str(PORTS[1])], cwd=ROOT, env=lab.env, capture_output=True,
            text=True, timeout=180)
        assert repair.returncode == 0, repair.stdout + repair.stderr
    _assert_pg1_primary(lab_status(lab.config))  # not swapped: the rollback alone did it
    print(f"\n{step}: exit {proc.returncode}, came back by "
          f"{'rollback + lab repair' if swapped else 'rollback alone'}; lost_writes "
          f"{results.get('lost_writes')} (basis {results.get('rpo_basis')}"
          f"{': ' + str(results.get('rpo_reason')) if results.get('rpo_reason') else ''}), rpo_s "
          f"{results.get('rpo_s')}, writer acked {len(log.acked)} lost {len(writer_lost)}, "
          f"{time.monotonic() - started:.1f}s")


def test_lab_up_refuses_two_standbys_and_repair_fixes_it(lab: Lab) -> None:
    """What an interrupted drill plus a careless restart can leave: both nodes configured as
    standbys (standby.signal). lab up must not call that a lab; lab repair brings it back."""
    lab_down(lab.config)
    for node in ("pg1", "pg2"):
        (lab.config.data_dir(node) / "standby.signal").touch()
    with pytest.raises(LabError) as raised:
        lab_up(lab.config)
    assert "drdrill lab repair" in str(raised.value)
    assert lab_status(lab.config).primary is None  # refused before starting anything
    repair = subprocess.run(
        [DRDRILL, "lab", "repair", "--primary-port", str(PORTS[0]),
         "--standby-port", str(PORTS[1])], cwd=ROOT, env=lab.env, capture_output=True,
        text=True, timeout=180)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    _assert_pg1_primary(lab_status(lab.config))
