"""Shared pieces of the benchmarks in this directory: where the tools are, timing a
command, interleaved rounds, and the printed table. Installs nothing; imports nothing
beyond the standard library (each benchmark imports drdrill or ansible only if it must)."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv drdrill is installed in (run with its python)


def tool(name: str, given: str | None = None) -> list[str] | None:
    """argv prefix of a tool: ``given`` (a command line, e.g. ``--chaos``), else the one
    beside this interpreter, else on PATH; None when there is none."""
    if given:
        return shlex.split(given)
    beside = BIN / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else None


def need(name: str, given: str | None = None) -> list[str]:
    found = tool(name, given)
    if found is None:
        raise SystemExit(f"{name} not found beside {sys.executable} nor on PATH: run this "
                         "with the python of the venv drdrill is installed in")
    return found


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every measured command gets: ours, with the venv's bin first on PATH
    (ansible-playbook, drdrill) so every contender finds the same Ansible."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None,
          ok: Sequence[int] = (0,), cpu: list[float] | None = None) -> float:
    """Wall time of one run of ``argv``; stops the benchmark if it fails (a failed run's
    time measures nothing). ``cpu`` gets the CPU time (user + system) of the process and
    its descendants appended: on a loaded machine it varies far less than wall time."""
    cpu_before = cpu_of_children()
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - start
    if cpu is not None:
        cpu.append(cpu_of_children() - cpu_before)
    if done.returncode not in ok:
        raise SystemExit(f"{shlex.join(argv)} exited {done.returncode}:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def rounds(contenders: Mapping[str, Callable[[], float]], count: int,
           warmup: int = 1) -> dict[str, list[float]]:
    """Every contender once per round, in the same order, after ``warmup`` unrecorded
    rounds: machine noise (other processes, caches) hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for number in range(warmup + count):
        for name, run in contenders.items():
            elapsed = run()
            if number >= warmup:
                times[name].append(elapsed)
        label = "warm-up" if number < warmup else f"round {number - warmup + 1}/{count}"
        print(f"  {label} done", file=sys.stderr, flush=True)
    return times


def table(times: Mapping[str, Sequence[float]], baselines: Sequence[str],
          title: str) -> str:
    """Median and spread per contender, with the ratio of medians to each baseline."""
    medians = {name: statistics.median(values) for name, values in times.items()}
    width = max(len(name) for name in times)
    head = f"{'':{width}}  {'median':>8}  {'min':>8}  {'max':>8}" + "".join(
        f"  {'÷ ' + b:>14}" for b in baselines)
    lines = [title, head, "-" * len(head)]
    for name, values in times.items():
        ratios = "".join(f"  {medians[name] / medians[b]:>13.2f}×" for b in baselines)
        lines.append(f"{name:{width}}  {medians[name]:>7.3f}s  {min(values):>7.3f}s  "
                     f"{max(values):>7.3f}s{ratios}")
    lines.append(f"({len(next(iter(times.values())))} rounds, medians; "
                 f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
                 f"{os.getloadavg()[0]:.2f})")
    return "\n".join(lines)
