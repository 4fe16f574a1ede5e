"""Ground truth for the lab drills: the shipped runbooks (drills/postgres-failover.yml,
drills/postgres-restore.yml) and a lagging-standby variant run end to end on a real
PostgreSQL pair, and what drdrill reports is checked against what the test sees itself.

One lab for the whole module (a module-scoped fixture), in a temporary directory, on its
own ports (56421/56422, restored instance 56431), never a developer's lab on the default
ports 54321/54322. The shipped runbooks run as shipped, with inventory.example.yml as
shipped: their endpoints are {{ service_dsn }} / {{ restore_service_dsn }}, which the
inventory derives from the lab's lab.env.json — so a lab on other ports needs no edit (the
test proves it). Only the lagging fixture, whose playbooks are the shipped ones, runs from a
tree (the fixture beside a copy of playbooks/, the file unchanged). DRDRILL_LAB_DIR (read
by inventory.example.yml), DRDRILL_LOCK_DIR and DRDRILL_RUNS_DIR point into that directory.
Tests run in file order and each leaves the lab as it found it (pg1 primary, pg2 streaming).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drdrill.engine.runner import RunOptions, RunResult, run_drill
from drdrill.events import Event
from drdrill.lab import LabConfig, LabStatus, lab_down, lab_status, lab_up, service_dsn
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DRILLS = ROOT / "tests" / "fixtures" / "drills"
PORTS = {"54321": "56421", "54322": "56422", "54331": "56431"}
OBSERVER_INTERVAL_S = 0.02


skip_without_postgres()


def _wall(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class Lab:
    config: LabConfig
    tree: Path
    runs: Path
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def inventory(self) -> Path:
        return ROOT / "inventory.example.yml"

    def drill(self, name: str) -> Path:
        shipped = ROOT / "drills" / f"{name}.yml"
        return shipped if shipped.is_file() else self.tree / "drills" / f"{name}.yml"

    def dsn(self, port: int | None = None) -> str:
        if port is None:
            return service_dsn(self.config)
        return f"host=127.0.0.1 port={port} dbname=drdrill user=postgres connect_timeout=2"


def _fixture_tree(base: Path) -> Path:
    """The lagging fixture, unchanged, beside a copy of the shipped playbooks/."""
    tree = base / "tree"
    shutil.copytree(ROOT / "playbooks", tree / "playbooks")
    (tree / "drills").mkdir()
    shutil.copy(FIXTURE_DRILLS / "postgres-failover-lagging.yml", tree / "drills")
    return tree


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    busy = [p for p in PORTS.values() if not _port_free(int(p))]
    if busy:
        pytest.fail(f"ports {busy} are taken; test_lab_drills needs 56421/56422/56431 free")
    base = Path(tempfile.mkdtemp(prefix="drdrill-drills-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account: it must reach the lab
    config = LabConfig(base / "lab", int(PORTS["54321"]), int(PORTS["54322"]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRDRILL_LAB_DIR", str(config.lab_dir))
        mp.setenv("DRDRILL_LOCK_DIR", str(base / "locks"))
        mp.setenv("DRDRILL_RUNS_DIR", str(base / "runs"))
        try:
            started = time.monotonic()
            _assert_healthy(lab_up(config))
            print(f"\nlab up {time.monotonic() - started:.1f}s")
            yield Lab(config, _fixture_tree(base), base / "runs")
        finally:
            lab_down(config, purge=True)
            shutil.rmtree(base, ignore_errors=True)


def _assert_healthy(status: LabStatus, primary: str = "pg1") -> None:
    assert status.healthy, status.to_json()
    assert status.primary is not None and status.primary.name == primary, status.to_json()


class _Recorder:
    """An event handler: calls ``on(event)`` for events of the run as they happen."""

    def __init__(self, on: Any) -> None:
        self.on = on

    def handle(self, event: Event) -> None:
        self.on(event)


def _run(lab: Lab, name: str, handlers: tuple[Any, ...] = ()) -> RunResult:
    started = time.monotonic()
    result = run_drill(RunOptions(lab.drill(name), lab.inventory, yes=True, runs_dir=lab.runs),
                       handlers=handlers)
    res = result.record["results"]
    print(f"\n{name}: {result.status} exit {result.exit_code} in {time.monotonic() - started:.1f}s"
          f"; RTO {res['rto_s']}s RPO {res['rpo_s']}s lost {res['lost_writes']} of "
          f"{res['acked_writes']} acknowledged; downtime {res['downtime_s']}s")
    return result


def _journal(result: RunResult) -> list[dict[str, Any]]:
    lines = (result.run_dir / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _canary(journal: list[dict[str, Any]]) -> tuple[dict[int, tuple[float, float]], set[int]]:
    """Acknowledged canary writes {seq: (sent wall, ack wall)} and the read-back's seqs."""
    origin = None
    acked: dict[int, tuple[float, float]] = {}
    present: set[int] = set()
    for event in journal:
        if origin is None:
            origin = _wall(event["wall"]) - event["mono"]
        if event["type"] == "canary_write" and event["data"]["acked"]:
            sent = origin + float(event["data"]["sent_mono"])
            acked[int(event["data"]["seq"])] = (sent, _wall(event["wall"]))
        elif event["type"] == "canary_readback":
            present = {int(s) for s in event["data"]["present"]}
    return acked, present


def _event(journal: list[dict[str, Any]], type_: str, **match: Any) -> dict[str, Any]:
    return next(e for e in journal if e["type"] == type_
                and all(e["data"].get(k) == v for k, v in match.items()))


def _canary_rows(lab: Lab, port: int | None = None) -> set[int]:
    with psycopg.connect(lab.dsn(port), autocommit=True) as conn:
        return {int(r[0]) for r in conn.execute("select seq from drdrill_canary")}


class Observer:
    """The test's own client: an INSERT every 20 ms through the multi-host service DSN
    (target_session_attrs=read-write), reconnecting after any failure; keeps the wall time
    of every acknowledged write."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create table if not exists t_observer (seq bigint primary key)")
            conn.execute("truncate t_observer")
        self.acked: dict[int, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute("insert into t_observer values (%s)", (seq,))
                self.acked[seq] = time.time()
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            self.stopping.wait(OBSERVER_INTERVAL_S)
        if conn is not None:
            conn.close()

    def first_ack_after(self, wall: float) -> float | None:
        later = [t for t in list(self.acked.values()) if t > wall]
        return min(later) if later else None

    def finish(self) -> set[int]:
        self.stopping.set()
        self.thread.join(10)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return {int(r[0]) for r in conn.execute("select seq from t_observer")}


def _reprotect_watch(lab: Lab, key: str) -> _Recorder:
    """Right after the reprotect step, ask the nodes what they are (lab_status)."""

    def on(event: Event) -> None:
        if event.type == "step_finished" and str(event.data.get("name", "")).startswith(
                "reprotect"):
            lab.notes[key] = lab_status(lab.config)

    return _Recorder(on)


def test_healthy_failover_rto_against_observer(lab: Lab) -> None:
    _assert_healthy(lab_status(lab.config))
    observer = Observer(lab.dsn())
    time.sleep(0.3)
    result = _run(lab, "postgres-failover", (_reprotect_watch(lab, "reprotected_1"),))
    survived = observer.finish()
    assert result.exit_code == 0 and result.status == "passed", result.record
    res = result.record["results"]
    assert res["lost_writes"] == 0 and res["rpo_s"] == 0 and res["rpo_met"] is True
    assert res["acked_writes"] > 50
    assert set(observer.acked) <= survived, "the observer's own acknowledged writes were lost"

    journal = _journal(result)
    t0 = _event(journal, "t0")  # the loop's mark at the disaster step's end
    # the record's T0 is the fault's effect (DESIGN.md "T0"), at or before that mark
    assert res["t0_mono"] <= t0["mono"] and res["t0_source"] in (
        "t0_task", "first_failed_probe", "disaster_step")
    t0_wall = _wall(t0["wall"]) - (t0["mono"] - res["t0_mono"])
    first = observer.first_ack_after(t0_wall)
    assert first is not None
    seen_rto = first - t0_wall
    restored = next(e for e in journal if e["type"] == "probe" and e["data"]["ok"]
                    and e["mono"] == res["service_restored_mono"])
    interval = result.record["service_interval_s"]
    slack = float(restored["data"]["latency_s"]) + 0.05
    print(f"RTO reported {res['rto_s']:.3f}s, observer's first write after T0 "
          f"{seen_rto:.3f}s (probe interval {interval}s, its latency "
          f"{restored['data']['latency_s']:.3f}s)")
    assert abs(res["rto_s"] - seen_rto) <= interval + slack, (res["rto_s"], seen_rto)
    assert res["rto_met"] is True
    _assert_healthy(lab_status(lab.config))


def test_restore_drill(lab: Lab) -> None:
    _assert_healthy(lab_status(lab.config))
    result = _run(lab, "postgres-restore")
    assert result.exit_code == 0 and result.status == "passed", result.record
    record, res = result.record, result.record["results"]
    journal = _journal(result)
    acked, present = _canary(journal)
    point = json.loads((result.run_dir / "restore-point.json").read_text())
    error = json.loads((result.run_dir / "operator-error.json").read_text())
    rp_wall, error_wall = _wall(point["server_time"]), _wall(error["server_time"])
    # once the damaged primary is fenced, only the restored instance (opened later) can
    # acknowledge a write
    fenced = _wall(record["checkpoints"]["fenced"])

    # every write acknowledged before the restore point survived; none sent after it and
    # acknowledged by the damaged primary did; writes to the restored instance survived
    eps = 0.002
    before = {s for s, (_, ack) in acked.items() if ack < rp_wall - eps}
    discarded = {s for s, (sent, ack) in acked.items() if sent > rp_wall + eps and ack < fenced}
    after = {s for s, (_, ack) in acked.items() if ack > fenced}
    assert before and discarded and after
    assert before <= present, sorted(before - present)
    assert not discarded & present, sorted(discarded & present)
    assert after <= present
    lost = set(acked) - present
    assert lost - discarded <= {s for s, (sent, ack) in acked.items()
                                if sent <= rp_wall + eps <= ack}, "lost outside the window"
    assert res["lost_writes"] == len(lost) > 0
    # the canary's RPO, recomputed: newest lost ack - newest surviving ack before it
    newest_lost = max(acked[s][1] for s in lost)
    survivor = max(ack for s, (_, ack) in acked.items() if s in present and ack < newest_lost)
    assert res["rpo_s"] == pytest.approx(newest_lost - survivor, abs=0.003)
    assert res["rpo_met"] is True and res["rto_met"] is True

    # the restore gap, from the journal's checkpoint pair, against the server's own clock
    offsets = record["checkpoint_offsets_s"]
    gap = offsets["operator_error"] - offsets["restore_point"]
    server_gap = error_wall - rp_wall
    print(f"restore gap {gap:.3f}s (journal) vs {server_gap:.3f}s (server); canary RPO "
          f"{res['rpo_s']:.3f}s, lost {res['lost_writes']} of {res['acked_writes']}; "
          f"RTO {res['rto_s']:.3f}s")
    assert gap > 0 and abs(gap - server_gap) < 1.0, (gap, server_gap)
    assert res["rpo_s"] >= server_gap - 0.2  # the canary also lost the writes after the error

    # the lab afterwards: the restored instance is pg1, pg2 streams from it, the ledger is
    # the one of the restore point, the canary table what the read-back saw
    _assert_healthy(lab_status(lab.config))
    assert not (lab.config.lab_dir / "restore").exists()
    assert _canary_rows(lab) == present
    with psycopg.connect(lab.dsn(), autocommit=True) as conn:
        rows = conn.execute("select count(*) from drdrill_ledger").fetchone()
    assert rows is not None and str(rows[0]) == point["ledger"].split("|")[0]


def test_failback_and_second_failover(lab: Lab) -> None:
    # during the first failover drill, right after reprotect: pg1 streamed from pg2
    mid = lab.notes.get("reprotected_1")
    assert isinstance(mid, LabStatus), "test_healthy_failover_rto_against_observer did not run"
    _assert_healthy(mid, primary="pg2")
    pg1 = next(n for n in mid.nodes if n.name == "pg1")
    assert pg1.role == "standby" and pg1.replication == "streaming"
    assert pg1.upstream_port == lab.config.standby_port

    # after it (and after the restore drill): pg1 primary again, pg2 streaming from it
    with psycopg.connect(lab.dsn(lab.config.primary_port), autocommit=True) as conn:
        rows = conn.execute("select application_name, state from pg_stat_replication"
                            ).fetchall()
    assert ("pg2", "streaming") in rows, rows

    result = _run(lab, "postgres-failover", (_reprotect_watch(lab, "reprotected_2"),))
    assert result.exit_code == 0 and result.status == "passed", result.record
    assert result.record["results"]["lost_writes"] == 0
    _assert_healthy(lab.notes["reprotected_2"], primary="pg2")
    _assert_healthy(lab_status(lab.config))


def test_lagging_standby_loses_the_window(lab: Lab) -> None:
    _assert_healthy(lab_status(lab.config))
    result = _run(lab, "postgres-failover-lagging")
    assert result.exit_code == 1 and result.status == "failed", result.record
    res = result.record["results"]
    assert res["rpo_met"] is False and res["rto_met"] is True

    journal = _journal(result)
    acked, present = _canary(journal)
    rows = _canary_rows(lab)  # the promoted node's history, now on pg1 after failback
    assert rows == present
    cut = json.loads((result.run_dir / "replication-cut.json").read_text())
    cut_from, cut_to = _wall(cut["reloaded_at"]), _wall(cut["confirmed_at"])
    t0_wall = _wall(_event(journal, "t0")["wall"])
    lag = 0.05  # async: a write acknowledged just before the cut may not have been shipped

    lost = set(acked) - rows
    in_window = {s for s, (_, ack) in acked.items() if cut_to <= ack <= t0_wall}
    early = {s for s, (_, ack) in acked.items() if ack < cut_from - lag}
    assert in_window and in_window <= lost, sorted(in_window - lost)
    assert early <= rows, sorted(early - rows)
    assert lost <= {s for s, (_, ack) in acked.items() if cut_from - lag <= ack <= t0_wall}
    assert res["lost_writes"] == len(lost)
    assert len(lost) - len(in_window) <= (cut_to - cut_from + lag) / 0.1 + 1

    window = max(acked[s][1] for s in lost) - cut_from
    interval = result.record["canary_interval_s"]
    print(f"lagging standby: window {window:.3f}s (cut confirmed within "
          f"{cut_to - cut_from:.3f}s), RPO {res['rpo_s']:.3f}s, lost {res['lost_writes']} of "
          f"{res['acked_writes']} ({len(in_window)} surely in the window)")
    assert abs(res["rpo_s"] - window) <= interval + (cut_to - cut_from) + lag
    _assert_healthy(lab_status(lab.config))
