"""Scale: a step that makes Ansible emit ~100 000 events, and a step across 200 hosts
(issue 11; targets: peak RSS < 200 MB and ``drdrill report`` < 2 s for the 100 000-event run).

1. **events** — one loop task of ``--items`` items (default 100 000; ``debug`` per item,
   ``connection: local``: Ansible emits one ``runner_item_on_ok`` event per item) run by
   ``drdrill run`` of a one-step runbook, and by bare ``ansible-playbook`` for comparison.
   Measured: wall time of each; drdrill's own peak RSS (``VmHWM`` of the drdrill process,
   polled from /proc — Ansible's processes are not counted) and, for the whole process
   tree, ``ru_maxrss`` of the largest waited-for process; the size of the run directory
   and of its journal; then ``drdrill report RUN`` (html and md) wall time.
2. **hosts** — one task (``command: true``) on ``--hosts`` local hosts (default 200) with
   ``--forks`` (default 50): ``ansible-playbook`` vs ``drdrill run``, median of
   ``--rounds`` interleaved rounds; drdrill's overhead per host = (drdrill − ansible) /
   hosts.

Needs: Linux (/proc), drdrill installed in the venv whose python runs this (its
``ansible-playbook`` is used). Installs nothing; writes only to a temporary directory,
removed at the end. The full-size events case takes minutes (Ansible itself runs ~1 ms
per item); ``--items 10000`` gives a quick look.

    .venv/bin/python benchmarks/events.py [--items 100000] [--hosts 200] [--forks 50]
                                          [--rounds 3] [--only events|hosts] [--no-bare]
                                          [--drdrill CMD]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import bench_env, need, timed

LOOP_PLAYBOOK = """\
- name: Many events
  hosts: all
  gather_facts: false
  tasks:
    - name: One event per item
      ansible.builtin.debug:
        msg: "{{{{ item }}}}"
      loop: "{{{{ range({items}) | list }}}}"
"""
HOSTS_PLAYBOOK = """\
- name: Many hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: One quick command per host
      ansible.builtin.command: "true"
      changed_when: false
"""
RUNBOOK = """\
name: {name}
objectives: {{rto: 1h, rpo: 0s}}
roles: {{fleet: all}}
steps:
  - {{name: the step, playbook: {playbook}, role: fleet, timeout: 1h}}
"""


def lay_out(work: Path, name: str, playbook: str, hosts: int) -> Path:
    """A drdrill tree in ``work/name``: drills/NAME.yml, playbooks/NAME.yml, inventory."""
    root = work / name
    (root / "drills").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "playbooks" / f"{name}.yml").write_text(playbook)
    (root / "drills" / f"{name}.yml").write_text(
        RUNBOOK.format(name=name, playbook=f"{name}.yml"))
    lines = ["all:", "  vars:", "    ansible_connection: local",
             f"    ansible_python_interpreter: {sys.executable}", "  hosts:"]
    lines += [f"    h{n:03d}:" for n in range(hosts)]
    (root / "inventory.yml").write_text("\n".join(lines) + "\n")
    return root


def vm_hwm_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run_watched(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall s, peak RSS MB of that process itself, exit status): /proc VmHWM is polled
    until it exits (the high-water mark only grows, so the last reading is the peak)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, vm_hwm_mb(proc.pid) or 0.0)
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: "
                         f"{(proc.stderr.read() if proc.stderr else '')[-2000:]}")
    return elapsed, peak, proc.returncode


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def events_case(work: Path, drdrill: list[str], items: int, bare: bool = True) -> None:
    root = lay_out(work, "events", LOOP_PLAYBOOK.format(items=items), hosts=1)
    env = bench_env(_drdrill_dirs(work))
    playbook = need("ansible-playbook")
    ansible_s = timed([*playbook, "-i", "inventory.yml", "playbooks/events.yml"], env,
                      cwd=root) if bare else float("nan")
    runs = work / "runs-events"
    wall, peak, status = run_watched(
        [*drdrill, "run", "drills/events.yml", "-i", "inventory.yml", "--yes",
         "--runs-dir", str(runs)], env, root)
    tree_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    journal = run_dir / "journal.jsonl"
    lines = sum(1 for _ in journal.open("rb"))
    report = {}
    for fmt in ("html", "md"):
        out = work / f"report.{fmt}"
        report[fmt] = timed([*drdrill, "report", str(run_dir), "--format", fmt, "-o",
                             str(out)], env, cwd=root)
    print(f"events: one loop task of {items} items (debug, connection local)")
    print(f"  ansible-playbook alone           {ansible_s:8.2f} s")
    print(f"  drdrill run                      {wall:8.2f} s   exit {status}   "
          f"({wall / ansible_s:.2f}× ansible-playbook)")
    print(f"  drdrill peak RSS (own VmHWM)     {peak:8.1f} MB  (target < 200 MB)")
    print(f"  largest process of the tree      {tree_peak:8.1f} MB  (ru_maxrss of children)")
    print(f"  run directory                    {du_mb(run_dir):8.1f} MB   journal "
          f"{journal.stat().st_size / 1e6:.1f} MB, {lines} events")
    print(f"  drdrill report --format html     {report['html']:8.2f} s   (target < 2 s)")
    print(f"  drdrill report --format md       {report['md']:8.2f} s")


def hosts_case(work: Path, drdrill: list[str], hosts: int, forks: int, count: int) -> None:
    root = lay_out(work, "hosts", HOSTS_PLAYBOOK, hosts=hosts)
    env = bench_env({**_drdrill_dirs(work), "ANSIBLE_FORKS": str(forks)})
    playbook = need("ansible-playbook")
    plain: list[float] = []
    ours: list[float] = []
    for number in range(count + 1):  # the first round warms caches, not recorded
        a = timed([*playbook, "-i", "inventory.yml", "playbooks/hosts.yml"], env, cwd=root)
        d = timed([*drdrill, "run", "drills/hosts.yml", "-i", "inventory.yml", "--yes",
                   "--runs-dir", str(work / "runs-hosts")], env, cwd=root, ok=(0, 1))
        if number:
            plain.append(a)
            ours.append(d)
    a_med, d_med = statistics.median(plain), statistics.median(ours)
    print(f"hosts: one task (command: true) on {hosts} local hosts, forks {forks}, "
          f"median of {count} rounds")
    print(f"  ansible-playbook                 {a_med:8.2f} s   ({a_med / hosts * 1000:.1f} ms "
          "per host)")
    print(f"  drdrill run                      {d_med:8.2f} s   ({d_med / a_med:.2f}×)")
    print(f"  drdrill overhead per host        {(d_med - a_med) / hosts * 1000:8.1f} ms  "
          f"(total {d_med - a_med:+.2f} s, start-up included)")


def _drdrill_dirs(work: Path) -> dict[str, str]:
    return {"DRDRILL_LOCK_DIR": str(work / "locks"), "DRDRILL_LAB_DIR": str(work / "lab"),
            "ANSIBLE_HOME": str(work / "ansible-home")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["events", "hosts"])
    parser.add_argument("--no-bare", action="store_true",
                        help="events: skip the bare ansible-playbook run (it takes as long "
                             "as drdrill's: Ansible spends ~10 ms per loop item here)")
    parser.add_argument("--drdrill", help="command line running drdrill (default: the one "
                                          "beside this python)")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        raise SystemExit("needs Linux /proc")
    drdrill = need("drdrill", args.drdrill)
    with tempfile.TemporaryDirectory(prefix="drdrill-events-") as tmp:
        if args.only in (None, "events"):
            events_case(Path(tmp), drdrill, args.items, bare=not args.no_bare)
        if args.only in (None, "hosts"):
            hosts_case(Path(tmp), drdrill, args.hosts, args.forks, args.rounds)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
