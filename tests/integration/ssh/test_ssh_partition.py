"""Network-partition disaster over SSH: the primary's link is cut while its PostgreSQL
keeps running (tests/fixtures/drills/ssh-partition-failover.yml).

- fenced through the harness's out-of-band hook: the standby is promoted, the network comes
  back, a write sent straight to the old primary fails and only one node is writable —
  the run passes with no acknowledged write lost;
- the same runbook without the fence step: when the network comes back both nodes are
  writable, the verification steps catch the split brain and the run fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drdrill.engine.runner import RunOptions, RunResult, run_drill
from harness.drills import (
    control_dir,
    create_database,
    pg_inventory,
    render_drill,
    ssh_leftovers,
)
from harness.netns import NetnsHarness
from harness.oob import install_hook, write_state
from harness.pg import PG_BIN, PgPair, missing_postgres

pytestmark = pytest.mark.skipif(missing_postgres() is not None, reason=str(missing_postgres()))

DRILL = "ssh-partition-failover.yml"
FENCE_STEP = "fence the old primary out of band"
WRITE_CHECK = "a write to the old primary fails"
SPLIT_CHECK = "exactly one primary (no split brain)"


@pytest.fixture()
def partition_lab(netns_factory: Callable[..., NetnsHarness], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[tuple[NetnsHarness, PgPair, Path]]:
    harness = netns_factory(["db1", "db2"])
    with PgPair(harness, "db1", "db2") as pg:
        pg.wait_streaming()
        create_database(pg)
        state = write_state(tmp_path / "oob.json", harness, pg, pg_bin=PG_BIN)
        hook_dir = tmp_path / "bin"
        install_hook(hook_dir, state)
        monkeypatch.setenv("PATH", f"{hook_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        yield harness, pg, pg_inventory(harness, pg, tmp_path / "inventory.yml")


def _run(harness: NetnsHarness, inventory: Path, tmp_path: Path,
         edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> RunResult:
    runbook = render_drill(DRILL, harness, tmp_path / "work", edit=edit)
    return run_drill(RunOptions(runbook, inventory, yes=True, runs_dir=tmp_path / "runs"))


def _steps(result: RunResult) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in result.record["steps"]}


def _step_detail(result: RunResult, name: str) -> str:
    for line in (result.run_dir / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "step_finished" and event["data"]["name"] == name:
            return str(event["data"].get("error") or "")
    raise AssertionError(f"no step_finished for {name!r}")


def _why(result: RunResult) -> list[Any]:
    """The run's reason and every failed preflight check (a run aborted before any step)."""
    found: list[Any] = []
    for line in (result.run_dir / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "run_finished" or (event["type"] == "preflight"
                                               and not event["data"].get("ok")):
            found.append(event["data"])
    return found


def _mono(result: RunResult, kind: str, **match: str) -> float:
    for line in (result.run_dir / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == kind and all(event["data"].get(k) == v for k, v in match.items()):
            return float(event["mono"])
    raise AssertionError(f"no {kind} event {match}")


def test_partition_fenced_out_of_band_passes(partition_lab: tuple[NetnsHarness, PgPair, Path],
                                             tmp_path: Path) -> None:
    harness, pg, inventory = partition_lab
    result = _run(harness, inventory, tmp_path)
    record = result.record
    steps = _steps(result)
    failed = {n: s.get("error") for n, s in steps.items() if s["status"] != "ok"}
    assert result.exit_code == 0, (record["status"], failed, _why(result))
    assert record["results"]["lost_writes"] == 0
    assert steps[WRITE_CHECK]["status"] == "ok" and steps[SPLIT_CHECK]["status"] == "ok"

    # T0 is when the partition took effect; RTO = partition -> service restored
    t0 = _mono(result, "t0")
    partitioned = _mono(result, "step_finished", name="partition the primary")
    restored = _mono(result, "checkpoint", name="service_restored")
    assert abs(t0 - partitioned) < 0.05
    rto = record["results"]["rto_s"]
    # the service probe may pass while the promote playbook still polls: the wait_for
    # checkpoint comes at the latest one probe interval after it
    assert 0 < rto <= restored - t0 + 0.3

    # the old primary really was cut off and kept running until it was fenced: during the
    # partition the service probe failed, and after it every write lands on db2
    with psycopg.connect(pg.standby.dsn("drdrill"), autocommit=True) as conn:
        assert conn.execute("select not pg_is_in_recovery()").fetchone() == (True,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.primary.dsn("drdrill"), autocommit=True).close()
    assert (pg.primary.data / "standby.signal").exists()
    assert (pg.primary.data / "drdrill.fenced").exists()
    assert ssh_leftovers(str(harness.dir), control_dir(result.run_dir)) == []
    print(f"\npartition -> service restored: {rto:.2f}s (RTO), downtime "
          f"{record['results']['downtime_s']}, lost writes {record['results']['lost_writes']}")


def test_partition_without_fencing_is_split_brain_and_fails(
        partition_lab: tuple[NetnsHarness, PgPair, Path], tmp_path: Path) -> None:
    harness, pg, inventory = partition_lab

    def without_fence(runbook: dict[str, Any]) -> dict[str, Any]:
        runbook["name"] = "postgres-partition-no-fence-ssh"
        runbook["steps"] = [s for s in runbook["steps"] if s["name"] != FENCE_STEP]
        return runbook

    result = _run(harness, inventory, tmp_path, edit=without_fence)
    steps = _steps(result)
    assert FENCE_STEP not in steps
    assert steps["promote the standby"]["status"] == "ok"
    assert steps["wait for service"]["status"] == "ok"
    # both nodes writable once the network is back: caught, and the run does not pass
    assert steps[WRITE_CHECK]["status"] == "failed"
    assert "SPLIT BRAIN" in _step_detail(result, WRITE_CHECK)
    assert steps[SPLIT_CHECK]["status"] == "failed"
    assert "writable nodes: 2" in _step_detail(result, SPLIT_CHECK)
    assert result.record["status"] in ("failed", "aborted")
    assert result.exit_code in (1, 3)
    for node in (pg.primary, pg.standby):  # it really was split brain
        with psycopg.connect(node.dsn(), autocommit=True) as conn:
            assert conn.execute("select pg_is_in_recovery()").fetchone() == (False,)
    assert ssh_leftovers(str(harness.dir), control_dir(result.run_dir)) == []
