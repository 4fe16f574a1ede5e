"""How much SSH handshake time a warm connection saves per playbook step (root only).

Starts one namespace SSH host (tests/harness/netns.py), then times the same one-task
playbook (``command: true`` on that host, host-key checking on) run by ``ansible-playbook``:

- warm: the engine's settings (``drdrill.engine.connections.ansible_ssh_env``): ControlPersist
  in a per-run control directory, pipelining — the master opened by an earlier step is
  reused, as in a drill where preflight/earlier steps opened it;
- cold: the same with ``ControlMaster=no`` — every step opens its own connection.

Rounds alternate cold/warm so machine noise hits both alike. Also times a bare ``ssh HOST
true`` both ways. Prints medians, the time saved per step and the ratio.

    sudo .venv/bin/python benchmarks/warm_connections.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "cli"))

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: one quick command
      ansible.builtin.command: "true"
"""
KEEPALIVE = "-o ServerAliveInterval=2 -o ServerAliveCountMax=2"


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    from drdrill.engine.connections import ansible_ssh_env
    from harness.drills import ssh_inventory
    from harness.netns import NetnsHarness, missing_requirements

    reason = missing_requirements()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="drdrill-bench-"))
    control_dir = work / "cp"
    control_dir.mkdir(mode=0o700)
    try:
        with NetnsHarness(["db1"], groups={"primary": ["db1"]}) as harness:
            inventory = ssh_inventory(harness, work / "inventory.yml",
                                      groups={"primary": ["db1"]})
            book = work / "one-task.yml"
            book.write_text(PLAYBOOK)
            base = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_NOCOLOR="1",
                        ANSIBLE_HOME=str(work / "ansible-home"), ANSIBLE_RETRY_FILES_ENABLED="0")
            warm_env = {**base, **ansible_ssh_env(control_dir)}
            cold_env = {**warm_env, "ANSIBLE_SSH_ARGS": f"-o ControlMaster=no {KEEPALIVE}"}
            playbook = [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                        str(inventory), str(book)]
            address = harness.address("db1")
            ssh_base = ["ssh", "-i", str(harness.client_key), "-o", "BatchMode=yes",
                        "-o", f"UserKnownHostsFile={harness.known_hosts}",
                        "-o", "StrictHostKeyChecking=yes", f"root@{address}", "true"]
            ssh_warm = ssh_base[:1] + ["-o", "ControlMaster=auto", "-o", "ControlPersist=300s",
                                       "-o", f"ControlPath={control_dir}/bench-%C"] + ssh_base[1:]
            ssh_cold = ssh_base[:1] + ["-o", "ControlMaster=no"] + ssh_base[1:]

            _timed(playbook, warm_env)  # opens the master, as an earlier step would
            _timed(ssh_warm, base)
            times: dict[str, list[float]] = {"play cold": [], "play warm": [],
                                             "ssh cold": [], "ssh warm": []}
            for _ in range(args.rounds):
                times["play cold"].append(_timed(playbook, cold_env))
                times["play warm"].append(_timed(playbook, warm_env))
                times["ssh cold"].append(_timed(ssh_cold, base))
                times["ssh warm"].append(_timed(ssh_warm, base))
            subprocess.run(["ssh", "-o", f"ControlPath={control_dir}/bench-%C", "-O", "exit",
                            f"root@{address}"], capture_output=True, check=False)
    finally:
        for entry in Path("/proc").iterdir():  # ansible's masters, named by the control dir
            if entry.name.isdigit():
                try:
                    if str(control_dir).encode() in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), 15)
                except OSError:
                    pass
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"rounds: {args.rounds} (medians; min-max)")
    for key, values in times.items():
        print(f"  {key:10s} {med[key] * 1000:7.0f} ms   ({min(values) * 1000:.0f}-"
              f"{max(values) * 1000:.0f})")
    saved = med["play cold"] - med["play warm"]
    print(f"one-task playbook step: warm saves {saved * 1000:.0f} ms per step "
          f"(cold/warm = {med['play cold'] / med['play warm']:.2f}x)")
    print(f"bare ssh command:       warm saves {(med['ssh cold'] - med['ssh warm']) * 1000:.0f}"
          f" ms (cold/warm = {med['ssh cold'] / med['ssh warm']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
