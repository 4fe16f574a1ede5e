"""drdrill's numbers against an independent client (issue 9): the SHIPPED failover drill
and a slow-fault variant run on a real PostgreSQL pair beside tests/harness/writer.py (its
own process, its own connection, writing a numbered row every 50 ms through the same
multi-host DSN). drdrill's RTO and downtime must be within one service-probe interval
+ 50 ms of the writer's outage (first failed write start → first successful write start),
and the lost writes must equal what the writer and the database say. A canary store that
cannot be read is "RPO not measured", never a loss.

Own lab on ports 57101/57102 in a temp dir (never the default lab).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.lab import LabConfig, lab_down, lab_status, lab_up, service_dsn
from drdrill.probes.postgres import CanaryUnreadable, PostgresCanary
from drdrill.runbook.model import CanarySpec
from harness.writer import IndependentWriter, WriterLog
from labkit import skip_without_postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PORTS = (57101, 57102)
SLACK_S = 0.05


@dataclass
class Lab:
    config: LabConfig
    base: Path
    runs: Path


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    skip_without_postgres()
    busy = [p for p in PORTS if not _port_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken; test_measure_truth needs 57101/57102 free")
    base = Path(tempfile.mkdtemp(prefix="drdrill-truth-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", *PORTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRDRILL_LAB_DIR", str(config.lab_dir))
        mp.setenv("DRDRILL_LOCK_DIR", str(base / "locks"))
        mp.setenv("DRDRILL_RUNS_DIR", str(base / "runs"))
        try:
            status = lab_up(config)
            assert status.healthy, status.to_json()
            yield Lab(config, base, base / "runs")
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _slow_fault_drill(base: Path) -> Path:
    """The shipped drill with its crash step's playbook swapped for the slow fixture one,
    beside a copy of the shipped playbooks/ (generated, so it never drifts from it)."""
    tree = base / "slow-tree"
    if not tree.exists():
        shutil.copytree(ROOT / "playbooks", tree / "playbooks")
        shutil.copy(ROOT / "tests" / "fixtures" / "playbooks" / "pg-crash-slow.yml",
                    tree / "playbooks")
        (tree / "drills").mkdir()
        text = (ROOT / "drills" / "postgres-failover.yml").read_text()
        assert text.count("playbook: pg-crash.yml") == 1
        text = text.replace("playbook: pg-crash.yml", "playbook: pg-crash-slow.yml")
        text = re.sub(r"(?m)^name: postgres-failover$", "name: postgres-failover-slow", text)
        (tree / "drills" / "postgres-failover-slow.yml").write_text(text)
    return tree / "drills" / "postgres-failover-slow.yml"


def _run_beside_writer(lab: Lab, runbook: Path, tag: str
                       ) -> tuple[RunResult, WriterLog, set[int], set[int]]:
    status = lab_status(lab.config)
    assert status.healthy and status.primary is not None and status.primary.name == "pg1"
    writer = IndependentWriter(service_dsn(lab.config), lab.base / f"writer-{tag}.jsonl")
    writer.start()
    time.sleep(0.5)
    result = run_drill(RunOptions(runbook, ROOT / "inventory.example.yml", yes=True,
                                  runs_dir=lab.runs))
    time.sleep(0.5)
    log = writer.stop()
    present = writer.rows()
    with psycopg.connect(service_dsn(lab.config), autocommit=True) as conn:
        canary = {int(r[0]) for r in conn.execute("select seq from drdrill_canary")}
    return result, log, present, canary


def _compare(result: RunResult, log: WriterLog, present: set[int], canary: set[int],
             tag: str) -> dict[str, Any]:
    record, res = result.record, result.record["results"]
    interval = float(record["service_interval_s"])
    outages = log.outages()
    assert outages, "the independent writer saw no outage: the fault did nothing?"
    first = outages[0]
    assert first.duration_s is not None
    journal = [json.loads(line) for line in
               (result.run_dir / "journal.jsonl").read_text().splitlines()]
    acked = {e["data"]["seq"] for e in journal
             if e["type"] == "canary_write" and e["data"]["acked"]}
    figures = {"run": tag, "writer_outage_s": round(first.duration_s, 3),
               "rto_s": res["rto_s"], "downtime_s": res["downtime_s"],
               "t0_source": res["t0_source"], "lost_writes": res["lost_writes"],
               "writer_lost": len(log.acked - present),
               "canary_missing_in_db": len(acked - canary),
               "outages": [(o["step"], o["duration_s"]) for o in res["outages"]],
               "writer_outages": [round(o.duration_s or -1, 3) for o in outages]}
    print(f"\nTRUTH {json.dumps(figures)}")
    # What is tested is agreement with the writer. On a loaded 2-core machine the shipped
    # drill can honestly exceed its 15 s RTO objective (seen: 19 s, the writer agreeing to
    # 0.1 s): then the only acceptable failure is exactly that, with exit 1.
    objective = float(record["objectives"]["rto_s"])
    assert res["rto_met"] is (res["rto_s"] <= objective)
    if result.status == "failed" and not res["rto_met"]:
        assert record["reason"] == "RTO objective missed" and result.exit_code == 1
    else:
        assert result.exit_code == 0 and result.status == "passed", record.get("reason")
    assert res["downtime_s"] is not None and res["rto_s"] is not None
    assert abs(res["downtime_s"] - first.duration_s) <= interval + SLACK_S, figures
    assert abs(res["rto_s"] - first.duration_s) <= interval + SLACK_S, figures
    # lost writes: drdrill's count = its acknowledged seqs missing in the table itself,
    # and the writer lost none of its own acknowledged rows either
    assert res["lost_writes"] == len(acked - canary) == 0, figures
    assert log.acked <= present, figures
    assert res["rpo_basis"] == "acknowledged_writes"
    # every outage the writer saw long enough to be sampled is in the record
    assert len(res["outages"]) >= len([o for o in outages if (o.duration_s or 9) > 2 * interval])
    return figures


@pytest.mark.lab
def test_shipped_failover_matches_the_independent_writer(lab: Lab) -> None:
    result, log, present, canary = _run_beside_writer(
        lab, ROOT / "drills" / "postgres-failover.yml", "healthy")
    figures = _compare(result, log, present, canary, "healthy")
    assert figures["t0_source"] in ("t0_task", "first_failed_probe")
    assert result.record["results"]["outages"][0]["step"] == "crash the primary"


@pytest.mark.lab
def test_slow_fault_t0_is_the_effect_not_the_step_end(lab: Lab) -> None:
    result, log, present, canary = _run_beside_writer(lab, _slow_fault_drill(lab.base),
                                                      "slow")
    figures = _compare(result, log, present, canary, "slow")
    res = result.record["results"]
    assert figures["t0_source"] == "first_failed_probe"
    step = next(s for s in result.record["steps"] if s["name"] == "crash the primary")
    assert step["duration_s"] >= 2.5
    assert res["t0_mono"] <= step["end_s"] - 2.0, (res["t0_mono"], step["end_s"])


def test_postgres_readback_raises_when_no_writable_node_answers() -> None:
    ports = "57141,57142"  # nothing listens there
    spec = CanarySpec(type="postgres", interval_s=0.1, timeout_s=1.0, options={
        "dsn": f"host=127.0.0.1,127.0.0.1 port={ports} dbname=x user=postgres "
               "target_session_attrs=read-write connect_timeout=1"})
    canary = PostgresCanary(spec)
    started = time.monotonic()
    with pytest.raises(CanaryUnreadable, match="no writable node"):
        canary.read_back()
    assert time.monotonic() - started >= 5.0  # it retried until its deadline


UNREADABLE = """\
version: 1
name: unreadable-canary
objectives: {rto: 20s, rpo: 1s}
canary:
  type: command
  interval: 100ms
  setup: [touch, store.log]
  write: [flock, store.log, sh, -c, 'echo "$DRDRILL_SEQ" >> store.log']
  read: [sh, -c, 'echo "store offline" >&2; exit 3']
steps:
  - name: let writes accumulate
    pause: 800ms
"""


def test_unreadable_canary_is_not_measured_never_a_loss(local_inventory: Path,
                                                        tmp_path: Path) -> None:
    runbook = tmp_path / "drills" / "unreadable-canary.yml"
    runbook.parent.mkdir()
    runbook.write_text(UNREADABLE)
    result = run_drill(RunOptions(runbook, local_inventory, yes=True,
                                  runs_dir=tmp_path / "runs"))
    res = result.record["results"]
    assert result.exit_code == 1 and result.status == "failed"
    assert "RPO not measured" in str(result.record["reason"])
    assert res["acked_writes"] > 3
    assert res["lost_writes"] is None and res["rpo_s"] is None
    assert res["rpo_basis"] == "not_measured" and "store offline" in res["rpo_reason"]
    md = (result.run_dir / "report.md").read_text()
    html = (result.run_dir / "report.html").read_text()
    for text in (md, html):
        assert "RPO not measured" in text
        assert "write(s) lost" not in text and "LOST" not in text
        assert not re.search(r"\b\d+ (of \d+ )?acknowledged write", text)
    assert os.path.exists(result.run_dir / "journal.jsonl")
