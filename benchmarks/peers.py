"""Drill wall time against the peers (issue 11; target: drdrill ≤ 1.0× the bare script).

The same work for everyone: three one-task playbooks (``sleep 0.5`` each, ``connection:
local``, 1.5 s of useful work), run by

- **bash script** — ``ansible-playbook`` three times from one ``bash -c``;
- **ansible_runner.run()** — three calls from one fresh Python process;
- **Chaos Toolkit** — one experiment whose method runs the three as process actions
  (``chaos run``), when ``chaos`` is found;
- **drdrill** — ``drdrill run`` of a three-step runbook (``--yes``, no service probe);
- **floor** — three bare ``sleep 0.5`` in one ``bash -c``.

Interleaved rounds (each contender once per round, same order) after a warm-up round;
prints median, min and max, and the ratio of medians to the bare script and to the floor;
then the CPU time (user + system of each process tree), which load disturbs far less.

Needs: drdrill installed in the venv whose python runs this (its ``ansible-playbook`` and
``ansible_runner`` are used). Optional: ``chaos`` beside that python, on PATH, or given with
``--chaos CMD`` (e.g. a separate venv: ``python -m venv /tmp/ctk && /tmp/ctk/bin/pip install
chaostoolkit``); the row is left out without it. Installs nothing; writes only to a
temporary directory (runs, locks, Ansible's home), removed at the end.

    .venv/bin/python benchmarks/peers.py [--rounds 5] [--drdrill CMD] [--chaos CMD]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _bench import bench_env, need, rounds, table, timed, tool

BOOKS = ("one", "two", "three")
PLAYBOOK = """\
- name: Sleep {name}
  hosts: all
  gather_facts: false
  tasks:
    - name: Half a second of useful work
      ansible.builtin.command: sleep 0.5
      changed_when: false
"""
INVENTORY = """\
all:
  hosts:
    bench:
      ansible_connection: local
      ansible_python_interpreter: {python}
"""
RUNBOOK = """\
name: peers-benchmark
description: three one-task playbooks, nothing else (benchmarks/peers.py)
objectives: {{rto: 60s, rpo: 0s}}
roles: {{local: all}}
steps:
{steps}
"""
RUNNER = """\
import sys
import tempfile
import ansible_runner
work, books = sys.argv[1], sys.argv[2:]
for book in books:  # a fresh private_data_dir per call, as drdrill uses one per step
    private = tempfile.mkdtemp(prefix="runner-", dir=work)
    r = ansible_runner.run(private_data_dir=private, playbook=book,
                           inventory=f"{work}/project/inventory.yml", quiet=True,
                           project_dir=f"{work}/project")
    if r.rc != 0:
        sys.exit(f"{book}: rc {r.rc}")
"""


def lay_out(work: Path) -> None:
    """project/ (playbooks + inventory, for the bash script, runner and chaos) and a
    drdrill tree (drills/ + playbooks/) over the same playbooks."""
    project = work / "project"
    (work / "drills").mkdir(parents=True)
    (work / "playbooks").mkdir()
    project.mkdir()
    for name in BOOKS:
        text = PLAYBOOK.format(name=name)
        (project / f"{name}.yml").write_text(text)
        (work / "playbooks" / f"{name}.yml").write_text(text)
    (project / "inventory.yml").write_text(INVENTORY.format(python=sys.executable))
    steps = "\n".join(f"  - {{name: step {n}, playbook: {n}.yml, role: local, timeout: 60s}}"
                      for n in BOOKS)
    (work / "drills" / "peers.yml").write_text(RUNBOOK.format(steps=steps))
    (work / "runner.py").write_text(RUNNER)
    (work / "experiment.json").write_text(json.dumps(experiment(work), indent=2))


def experiment(work: Path) -> dict[str, object]:
    """Chaos Toolkit: the three playbooks as process actions, no hypothesis."""
    playbook = str(need("ansible-playbook")[0])
    return {
        "title": "three one-task playbooks", "description": "benchmarks/peers.py",
        "method": [{"type": "action", "name": f"playbook {n}",
                    "provider": {"type": "process", "path": playbook,
                                 "arguments": ["-i", str(work / "project" / "inventory.yml"),
                                               str(work / "project" / f"{n}.yml")]}}
                   for n in BOOKS],
    }


def contenders(work: Path, drdrill: list[str], chaos: list[str] | None,
               cpu: dict[str, list[float]]) -> dict[str, Callable[[], float]]:
    """Each contender as a callable returning its wall time; its CPU time (the process
    tree's user + system) goes to ``cpu[name]``."""
    env = bench_env({"ANSIBLE_HOME": str(work / "ansible-home"),
                     "DRDRILL_RUNS_DIR": str(work / "runs"),
                     "DRDRILL_LOCK_DIR": str(work / "locks"),
                     "DRDRILL_LAB_DIR": str(work / "lab")})
    project = work / "project"
    playbook = need("ansible-playbook")[0]
    script = " && ".join(f"{playbook} -i inventory.yml {n}.yml >/dev/null" for n in BOOKS)
    out: dict[str, Callable[[], float]] = {
        "bash script": lambda: timed(["bash", "-c", script], env, cwd=project,
                                      cpu=cpu.setdefault("bash script", [])),
        "ansible_runner.run()": lambda: timed(
            [sys.executable, str(work / "runner.py"), str(work),
             *(f"{n}.yml" for n in BOOKS)], env, cwd=work,
            cpu=cpu.setdefault("ansible_runner.run()", [])),
    }
    if chaos is not None:
        out["Chaos Toolkit"] = lambda: timed(
            [*chaos, "--no-version-check", "--no-log-file", "run", "--no-validation",
             "--journal-path", str(work / "chaos-journal.json"),
             str(work / "experiment.json")], env, cwd=work,
            cpu=cpu.setdefault("Chaos Toolkit", []))
    out["drdrill"] = lambda: timed(
        [*drdrill, "run", "drills/peers.yml", "-i", str(project / "inventory.yml"), "--yes",
         "--runs-dir", str(work / "runs")], env, cwd=work, ok=(0, 1),
        cpu=cpu.setdefault("drdrill", []))
    out["floor"] = lambda: timed(["bash", "-c", "sleep 0.5; sleep 0.5; sleep 0.5"], env,
                                 cpu=cpu.setdefault("floor", []))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--drdrill", help="command line running drdrill (default: the one "
                                          "beside this python)")
    parser.add_argument("--chaos", help="command line running Chaos Toolkit's chaos")
    args = parser.parse_args()
    drdrill = need("drdrill", args.drdrill)
    chaos = tool("chaos", args.chaos)
    with tempfile.TemporaryDirectory(prefix="drdrill-peers-") as tmp:
        work = Path(tmp)
        lay_out(work)
        cpu: dict[str, list[float]] = {}
        times = rounds(contenders(work, drdrill, chaos, cpu), args.rounds)
    print(table(times, ["bash script", "floor"],
                "three one-task playbooks (sleep 0.5 each), wall time per contender"))
    print()
    print(table({name: values[1:] for name, values in cpu.items()}, ["bash script"],
                "the same, CPU time (user + system of the process tree; steadier under load)"))
    if chaos is None:
        print("(chaos not found: pass --chaos CMD to compare with Chaos Toolkit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
