"""Lab failover RTO against the hand-measured floor, and where each RTO-path step's time goes.

In one run, on its own lab (ports 58401/58402 by default, in a temporary directory, never a
developer's lab), interleaved rounds of:

- drdrill: the shipped ``drills/postgres-failover.yml`` with ``inventory.example.yml`` (the
  drill fails back at its end, so every round starts from pg1 primary → pg2 standby); an
  independent writer (tests/harness/writer.py, its own process and psycopg connection, every
  20 ms through the same multi-host DSN) runs beside it;
- the floor: a bare script — the same writer, then ``pg_ctl -m immediate stop`` of the
  primary and ``pg_ctl -w promote`` of the standby run directly (as the lab's OS account);
  floor = kill start → first write acknowledged after it (``drdrill lab repair`` in-between).

Prints per-step medians (the steps between the disaster and service restored: start-up
before the first task, the tasks, teardown after the last), per-task medians, drdrill's RTO
median/worst, the independent writer's outage, the floor and the ratio.

With ``--ssh`` (root; tests/harness/netns.py) the same drill runs over SSH against two
namespace hosts (inventory from tests/harness/drills.py); the floor there is two plain
``ssh`` commands (stop the primary, promote the standby), each round on a fresh pair.

    .venv/bin/python benchmarks/rto.py [--rounds 5] [--ports 58401,58402] [--ssh]

It installs nothing: it needs the PostgreSQL server binaries (as ``drdrill lab up`` does)
and, for ``--ssh``, root with ip/sshd/ssh-keygen (what tests/integration/ssh needs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "cli"))

RTO_PATH = ("crash the primary", "fence the old primary", "promote the standby",
            "wait for service")
WRITER_INTERVAL_S = 0.02


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]


def step_breakdown(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per RTO-path step: total, before the first task (start-up), after the last (teardown).
    A step that ran inside a parallel group is timed the same way, by its own events."""
    out: dict[str, dict[str, float]] = {}
    started: dict[str, float] = {}
    tasks: dict[str, list[float]] = defaultdict(list)
    for e in events:
        data, kind = e["data"], e["type"]
        name = data.get("name") if kind.startswith("step_") else data.get("step")
        if name not in RTO_PATH or data.get("phase", "main") != "main":
            continue
        if kind == "step_started":
            started[name] = e["mono"]
        elif kind == "task":
            tasks[name].append(e["mono"])
        elif kind in ("step_finished", "step_ended") and name in started:
            row = {"total": e["mono"] - started[name]}
            if tasks[name]:
                row["before_first_task"] = tasks[name][0] - started[name]
                row["after_last_task"] = e["mono"] - tasks[name][-1]
            out[name] = row
    return out


def task_durations(events: list[dict[str, Any]]) -> dict[str, float]:
    """Ansible's own duration of each task of the RTO-path steps (result events), and each
    command step's process duration per host."""
    found: dict[str, float] = {}
    for e in events:
        data = e["data"]
        if data.get("step") not in RTO_PATH or "duration_s" not in data:
            continue
        if e["type"] == "task":
            key = f"{data['step']} / {str(data.get('task', '')).strip()}"
        elif e["type"] == "command":  # a command step: one process (or channel) per host
            key = f"{data['step']} / command on {data.get('host')}"
        else:
            continue
        found[key] = found.get(key, 0.0) + float(data["duration_s"])
    return found


class Writer:
    """tests/harness/writer.py at 20 ms: what an outside client saw."""

    def __init__(self, dsn: str, log: Path) -> None:
        from harness.writer import IndependentWriter

        self.writer = IndependentWriter(dsn, log, interval_s=WRITER_INTERVAL_S)

    def __enter__(self) -> Writer:
        self.writer.start()
        time.sleep(0.4)
        return self

    def __exit__(self, *exc: object) -> None:
        self.log = self.writer.stop()

    def first_write_after(self, mono: float) -> float | None:
        """Seconds from ``mono`` (the kill) to the end of the first write acknowledged after
        the outage began (the old primary still acknowledges until the kill takes effect)."""
        attempts = sorted(self.log.attempts, key=lambda a: a.start_mono)
        failed = next((a for a in attempts if not a.ok and a.start_mono >= mono), None)
        if failed is None:
            return None
        ends = [a.start_mono + a.duration_s for a in attempts
                if a.ok and a.start_mono > failed.start_mono]
        return min(ends) - mono if ends else None

    def outage(self) -> float | None:
        outages = self.log.outages()
        return outages[0].duration_s if outages else None


NO_PRESTAGE = "@no-prestage"


def _drill_round(drill: Path, inventory: Path, runs: Path, dsn: str, log: Path
                 ) -> dict[str, Any]:
    """One run of ``drill`` (``PATH@no-prestage``: with pre-staged steps off)."""
    from drdrill.engine.runner import RunOptions, run_drill

    path, _, flag = str(drill).partition("@")
    extra: dict[str, Any] = {"prestage": False} if flag == NO_PRESTAGE[1:] else {}
    with Writer(dsn, log) as writer:
        result = run_drill(RunOptions(Path(path), inventory, yes=True, runs_dir=runs, **extra))
        time.sleep(0.3)
    events = _events(result.run_dir)
    failed = [s["name"] for s in result.record["steps"] if s["status"] != "ok"]
    if result.exit_code != 0:
        print(f"  drill exit {result.exit_code} ({result.status}); not ok: {failed}",
              file=sys.stderr)
    return {"rto": result.record["results"]["rto_s"], "writer_outage": writer.outage(),
            "steps": step_breakdown(events), "tasks": task_durations(events),
            "exit": result.exit_code, "run_dir": str(result.run_dir)}


def _floor_round(dsn: str, log: Path, kill: Callable[[], None],
                 promote: Callable[[], None]) -> float | None:
    with Writer(dsn, log) as writer:
        t_kill = time.monotonic()
        kill()
        promote()
        time.sleep(0.5)
    return writer.first_write_after(t_kill)


def _run(argv: list[str], timeout: float = 60) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr[-800:]}")


@contextmanager
def _lab(ports: tuple[int, int]) -> Iterator[tuple[Any, Path]]:
    from drdrill.lab import LabConfig, lab_down, lab_up

    base = Path(tempfile.mkdtemp(prefix="drdrill-rto-", dir="/tmp"))
    base.chmod(0o755)
    config = LabConfig(base / "lab", *ports)
    os.environ.update(DRDRILL_LAB_DIR=str(config.lab_dir), DRDRILL_LOCK_DIR=str(base / "locks"),
                      DRDRILL_RUNS_DIR=str(base / "runs"))
    try:
        status = lab_up(config)
        if not status.healthy:
            raise SystemExit(f"lab not healthy: {status.to_json()}")
        yield config, base
    finally:
        lab_down(config, purge=True)
        shutil.rmtree(base, ignore_errors=True)


def bench_lab(rounds: int, ports: tuple[int, int], drills_: list[Path]) -> dict[str, Any]:
    from drdrill.lab import lab_status, read_env, service_dsn
    from drdrill.lab.repair import lab_repair

    drills: dict[str, list[dict[str, Any]]] = {str(d): [] for d in drills_}
    floors: list[float | None] = []
    with _lab(ports) as (config, base):
        env = read_env(config) or {}
        run_as, bin_dir = list(env["run_as"]), env["bin_dir"]
        nodes = env["nodes"]
        dsn = service_dsn(config)

        def pg_ctl(node: str, *args: str) -> None:
            _run([*run_as, f"{bin_dir}/pg_ctl", "-D", nodes[node]["data"], *args])

        def ready() -> None:  # a failed round may leave the lab failed over: put it back
            status = lab_status(config)
            if not (status.healthy and status.primary and status.primary.name == "pg1"):
                lab_repair(config, lambda _text: None)

        for i in range(rounds):
            for drill in drills_:
                ready()
                row = _drill_round(drill, ROOT / "inventory.example.yml", base / "runs", dsn,
                                   base / f"writer-drill-{i}.jsonl")
                drills[str(drill)].append(row)
                print(f"  round {i + 1}: {drill}: RTO {row['rto']}", file=sys.stderr)
            ready()
            floors.append(_floor_round(
                dsn, base / f"writer-floor-{i}.jsonl",
                lambda: pg_ctl("pg1", "-m", "immediate", "-w", "stop"),
                lambda: pg_ctl("pg2", "-w", "promote")))
            print(f"  round {i + 1}: floor {floors[-1]}", file=sys.stderr)
    return {"where": "lab", "drills": drills, "floors": floors}


def bench_ssh(rounds: int, drills_: list[Path]) -> dict[str, Any]:
    from harness.drills import create_database, pg_inventory, service_dsn
    from harness.netns import NetnsHarness, missing_requirements
    from harness.pg import PG_BIN, PG_USER, PgPair

    reason = missing_requirements()
    if reason:
        raise SystemExit(f"--ssh: {reason}")
    work = Path(tempfile.mkdtemp(prefix="drdrill-rto-ssh-", dir="/tmp"))
    drills: dict[str, list[dict[str, Any]]] = {str(d): [] for d in drills_}
    floors: list[float | None] = []
    harness = NetnsHarness(["db1", "db2"]).up()
    try:
        for i in range(rounds):
            with PgPair(harness, "db1", "db2") as pg:
                pg.wait_streaming()
                create_database(pg)
                inventory = pg_inventory(harness, pg, work / f"inv-{i}.yml")
                for drill in drills_:
                    row = _drill_round(drill, inventory, work / "runs", service_dsn(pg),
                                       work / f"writer-drill-{i}.jsonl")
                    drills[str(drill)].append(row)
                    print(f"  ssh round {i + 1}: {drill}: RTO {row['rto']}", file=sys.stderr)
                pg.wait_streaming()
                floors.append(_floor_round(
                    service_dsn(pg), work / f"writer-floor-{i}.jsonl",
                    lambda: _run(_ssh(harness, "db1", PG_USER, str(PG_BIN / "pg_ctl"), "-D",
                                      str(pg.primary.data), "-m", "immediate", "-w", "stop")),
                    lambda: _run(_ssh(harness, "db2", PG_USER, str(PG_BIN / "pg_ctl"), "-D",
                                      str(pg.standby.data), "-w", "promote"))))
                print(f"  ssh round {i + 1}: floor {floors[-1]}", file=sys.stderr)
    finally:
        harness.down()
        shutil.rmtree(work, ignore_errors=True)
    return {"where": "ssh", "drills": drills, "floors": floors}


def _ssh(harness: Any, host: str, user: str, *argv: str) -> list[str]:
    """A plain ssh command (new connection, host-key checking on) running argv as ``user``."""
    import shlex

    hv = harness.inventory_data()["all"]["hosts"][host]
    return ["ssh", "-p", str(hv.get("ansible_port", 22)), "-i", str(harness.client_key),
            "-o", f"UserKnownHostsFile={harness.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", f"{hv.get('ansible_user', 'root')}@{hv['ansible_host']}",
            shlex.join(["runuser", "-u", user, "--", *argv])]


def _med(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f}" if values else "     -"


def report(result: dict[str, Any]) -> None:
    floors = [f for f in result["floors"] if f is not None]
    print(f"\n== {result['where']}: floor (by hand) median {_med(floors)}  "
          f"all {[round(f, 3) for f in floors]}")
    for drill, rows in result["drills"].items():
        report_drill(drill, rows, floors)


def report_drill(name: str, drills: list[dict[str, Any]], floors: list[float]) -> None:
    print(f"\n-- {name}: {len(drills)} rounds")
    print(f"{'RTO-path step':34} {'total':>7} {'before 1st task':>16} {'after last':>11}")
    for step in RTO_PATH:
        rows = [d["steps"][step] for d in drills if step in d["steps"]]
        print(f"{step:34} {_med([r['total'] for r in rows]):>7} "
              f"{_med([r['before_first_task'] for r in rows if 'before_first_task' in r]):>16} "
              f"{_med([r['after_last_task'] for r in rows if 'after_last_task' in r]):>11}")
    print(f"\n{'task (Ansible duration, median s)':70} {'':>7}")
    names = sorted({k for d in drills for k in d["tasks"]},
                   key=lambda k: (RTO_PATH.index(k.split(' / ')[0]), k))
    for name in names:
        print(f"  {name[:68]:68} {_med([d['tasks'][name] for d in drills if name in d['tasks']])}")
    rtos = [float(d["rto"]) for d in drills if d["rto"] is not None]
    outages = [float(d["writer_outage"]) for d in drills if d["writer_outage"] is not None]
    print(f"\ndrdrill RTO       median {_med(rtos)}  worst {max(rtos, default=0):6.3f}  "
          f"all {[round(r, 3) for r in rtos]}")
    print(f"writer's outage   median {_med(outages)}  (independent client, 20 ms)")
    if rtos and floors:
        print(f"ratio RTO/floor   {statistics.median(rtos) / statistics.median(floors):6.1f}x")
    print(f"exit codes        {[d['exit'] for d in drills]}")


def _variant(text: str) -> Path:
    """``PATH`` or ``PATH@no-prestage``, the path made absolute."""
    path, at, flag = text.partition("@")
    return Path(str(Path(path).resolve()) + at + flag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ports", default="58401,58402", help="lab primary,standby ports")
    parser.add_argument("--ssh", action="store_true", help="also over SSH (root, namespaces)")
    parser.add_argument("--no-lab", action="store_true", help="only the --ssh variant")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--drill", action="append",
                        help="runbook(s) to time, interleaved in each round (default: the "
                             "shipped drills/postgres-failover.yml); e.g. a copy of an "
                             "older tree's drill, to compare before/after in one run")
    args = parser.parse_args()
    p1, p2 = (int(p) for p in args.ports.split(","))
    drills = [_variant(d) for d in args.drill or [str(ROOT / "drills" / "postgres-failover.yml")]]
    results = []
    if not args.no_lab:
        results.append(bench_lab(args.rounds, (p1, p2), drills))
        report(results[-1])
    if args.ssh:
        results.append(bench_ssh(args.rounds, drills))
        report(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
