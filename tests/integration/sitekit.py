"""Helpers for the site-trust tests (test_site_trust_*.py, test_upgrade_trust_*.py): the
service lab's control command as an outsider calls it, the canary's acknowledged writes read
from a journal, and the transfers a site's store really holds — read through that site's own
API and from the database, sharing no code with drdrill's canary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from harness.http_client import ClientLog, HttpClient
from harness.service_lab import DRDRILL, ROOT, ServiceLab, leftovers

Lines = list[dict[str, Any]]


def ctl(lab: ServiceLab, *args: str) -> dict[str, Any]:
    """``python -m drdrill.lab.service ACTION SITE`` (what an operator or a fault does)."""
    done = subprocess.run([sys.executable, "-m", "drdrill.lab.service", "--lab-dir",
                           str(lab.config.lab_dir), *args], capture_output=True, text=True,
                          timeout=60, check=True)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def journal(run_dir: Path) -> Lines:
    """The complete lines of a run's journal (a line being written is left out)."""
    path = run_dir / "journal.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def acked_references(lines: Lines, run_id: str) -> set[str]:
    """The references of the canary writes the journal says were acknowledged."""
    return {f"drdrill-canary-{run_id}-{int(e['data']['seq'])}" for e in lines
            if e.get("type") == "canary_write" and e["data"].get("acked")}


def site_store(site_url: str, prefix: str) -> set[str]:
    """The references a site's own API lists (urllib: not drdrill's canary code)."""
    url = f"{site_url}/transfers?prefix={urllib.parse.quote(prefix, safe='')}"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        body = json.loads(response.read())
    return {str(row["reference"]) for row in body["transfers"]}


def db_store(lab: ServiceLab, prefix: str) -> set[str]:
    """The references the database holds (the store both sites write to)."""
    with psycopg.connect(str(lab.env["service_dsn"]), autocommit=True) as conn:
        rows = conn.execute("select reference from service_transfers where reference "
                            "like %s", (prefix + "%",)).fetchall()
    return {str(r[0]) for r in rows}


def served_by(lab: ServiceLab) -> tuple[str, str, bool]:
    """(site, version, has amount_cents) of one read of the reference transfer via HAProxy."""
    with urllib.request.urlopen(f"{lab.url}/transfers/drdrill-reference",  # noqa: S310
                                timeout=5) as response:
        body = json.loads(response.read())
    return str(body.get("site")), str(body.get("version")), isinstance(
        body.get("amount_cents"), int)


def repair(lab: ServiceLab) -> subprocess.CompletedProcess[str]:
    cfg = lab.config
    return lab.cli("lab", "repair", "--primary-port", str(cfg.primary_port),
                   "--standby-port", str(cfg.standby_port), timeout=300)


def assert_whole(lab: ServiceLab) -> None:
    """Both sites running version N, HAProxy routing to both, clients served by site A."""
    status = lab.cli("lab", "status", "--json", "--primary-port",
                     str(lab.config.primary_port), "--standby-port",
                     str(lab.config.standby_port))
    assert status.returncode == 0, status.stdout + status.stderr
    service = json.loads(status.stdout)["extras"]["service"]
    sites = {s["name"]: s for s in service["sites"]}
    assert {n: (s["state"], s["version"], s["haproxy"]) for n, s in sites.items()} == {
        "site-a": ("running", "1.0.0", "UP"), "site-b": ("running", "1.0.0", "UP")}, sites
    assert served_by(lab) == ("site-a", "1.0.0", True)


def lab_env(lab: ServiceLab) -> dict[str, str]:
    return {**os.environ, "DRDRILL_LAB_DIR": str(lab.config.lab_dir),
            "DRDRILL_LOCK_DIR": str(lab.base / "locks"), "DRDRILL_RUNS_DIR": str(lab.runs)}


def start_run(lab: ServiceLab, runbook: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(DRDRILL), "run", str(runbook), "-i",
                             str(ROOT / "inventory.example.yml"), "--yes", *extra],
                            cwd=ROOT, env=lab_env(lab), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass
class WatchedRun:
    """A ``drdrill run`` with the independent HTTP client watching; ``log`` is the client's
    record once the ``watched_run`` block has ended."""

    proc: subprocess.Popen[str]
    before: set[Path]
    log: ClientLog | None = None


@contextmanager
def watched_run(lab: ServiceLab, client_log: Path, runbook: Path, *extra: str
                ) -> Iterator[WatchedRun]:
    """Start the client, then the run; at the end kill the run if it is still going and stop
    the client, whatever the block's assertions did."""
    client = HttpClient(f"{lab.url}/transfers/drdrill-reference", client_log,
                        interval_s=0.02, timeout_s=2.0)
    client.start()
    watched = WatchedRun(start_run(lab, runbook, *extra), runs_now(lab))
    try:
        yield watched
    finally:
        if watched.proc.poll() is None:
            watched.proc.kill()
            watched.proc.wait()
        watched.log = client.stop()


def assert_back_on_site_a(watched: WatchedRun, run_dir: Path) -> None:
    """The client's last answers (after the rollback or repair) came from site A, and no
    ansible process of the run is left."""
    assert watched.log is not None
    last = watched.log.attempts[-5:]
    assert len(last) == 5 and all(a.ok and a.site == "site-a" for a in last), last
    assert not [p for p in leftovers(run_dir) if "ansible" in p], leftovers(run_dir)


def new_run_dir(lab: ServiceLab, before: set[Path], deadline_s: float = 240) -> Path:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        new = [p.parent for p in lab.runs.glob("*/journal.jsonl") if p.parent not in before]
        if new:
            return new[0]
        time.sleep(0.02)
    raise AssertionError("no run directory appeared")


def runs_now(lab: ServiceLab) -> set[Path]:
    return {p.parent for p in lab.runs.glob("*/journal.jsonl")}


def step_started(lines: Lines, step: str, phase: str = "main") -> bool:
    return any(e.get("type") == "step_started" and e["data"].get("name") == step
               and e["data"].get("phase", "main") == phase for e in lines)


def signal_at(proc: subprocess.Popen[str], run_dir: Path, trigger: Callable[[Lines], bool],
              sig: int, deadline_s: float = 240) -> Lines:
    """Send ``sig`` as soon as ``trigger(journal lines)`` holds; the lines seen then."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and proc.poll() is None:
        lines = journal(run_dir)
        if trigger(lines):
            proc.send_signal(sig)
            return lines
        time.sleep(0.03)
    raise AssertionError(f"the trigger never fired (rc={proc.poll()})")


def in_flight(lines: Lines) -> list[str]:
    """The steps started and not finished in ``lines`` ("phase: name")."""
    open_steps: dict[str, None] = {}
    for e in lines:
        key = f"{e['data'].get('phase', 'main')}: {e['data'].get('name')}"
        if e.get("type") == "step_started":
            open_steps[key] = None
        elif e.get("type") == "step_finished":
            open_steps.pop(key, None)
    return list(open_steps)


def no_false_loss(lab: ServiceLab, record: dict[str, Any], lines: Lines) -> str:
    """drdrill's lost_writes is the truth (acknowledged references missing from the
    database — 0 here: both sites write to one database), or null with a reason."""
    res = record["results"]
    prefix = f"drdrill-canary-{record['run_id']}-"
    missing = acked_references(lines, str(record["run_id"])) - db_store(lab, prefix)
    assert not missing, sorted(missing)  # the store has every acknowledged write
    if res.get("lost_writes") is None:
        assert res.get("rpo_basis") == "not_measured" and res.get("rpo_reason"), res
        return f"not measured ({res['rpo_reason']})"
    assert res["lost_writes"] == 0, res
    return f"0 lost of {res['acked_writes']}"


def whole(lab: ServiceLab) -> bool:
    try:
        assert_whole(lab)
    except (AssertionError, OSError, ValueError):
        return False
    return True


def back_to_whole(lab: ServiceLab) -> str:
    """'rollback alone' when the run left the service whole, else `drdrill lab repair` must
    make it whole; which of the two it took."""
    if whole(lab):
        return "rollback alone"
    done = repair(lab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_whole(lab)
    return "lab repair"
