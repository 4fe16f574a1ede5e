"""Start-up: how long ``drdrill --help`` and ``drdrill validate`` take before anything is
done, against a bare interpreter and ``chaos --help`` (issue 11; targets: --help ≤ 0.3 s,
validate of one shipped drill with its inventory ≤ 0.5 s).

Needs: drdrill installed in the venv whose python runs this (``.venv/bin/python
benchmarks/startup.py``). Optional: ``chaos`` (Chaos Toolkit) beside that python, on PATH,
or given with ``--chaos CMD``; the row is left out without it. Installs nothing. The
inventory's lookups read ``$DRDRILL_LAB_DIR/lab.env.json``: the benchmark points it at an
empty temporary dir, so every machine measures the same (no lab) case; validate's inventory
cache goes to the same temporary dir (filled by the warm-up round), and a second row runs
validate with the cache off (``DRDRILL_CACHE_DIR=``): Ansible parses every time.

Rounds are interleaved (each command once per round, in the same order) after a warm-up
round; prints median, min and max per command and the ratio of medians to ``python -c
pass``, for wall time and for CPU time (user + system, which load disturbs far less).

    .venv/bin/python benchmarks/startup.py [--rounds 15] [--drdrill CMD] [--chaos CMD]
                                           [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _bench import ROOT, bench_env, need, rounds, table, timed, tool

DRILL = "drills/postgres-failover.yml"
INVENTORY = "inventory.example.yml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--drdrill", help="command line running drdrill (default: the one "
                                          "beside this python)")
    parser.add_argument("--chaos", help="command line running Chaos Toolkit's chaos")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="checkout whose drills/ and inventory are validated (default: "
                             "this one)")
    args = parser.parse_args()
    drdrill = need("drdrill", args.drdrill)
    chaos = tool("chaos", args.chaos)
    with tempfile.TemporaryDirectory(prefix="drdrill-startup-") as tmp:
        env = bench_env({"DRDRILL_LAB_DIR": str(Path(tmp) / "lab"),
                         "DRDRILL_CACHE_DIR": str(Path(tmp) / "cache")})
        validate_i = [*drdrill, "validate", DRILL, "-i", INVENTORY]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "drdrill --help": [*drdrill, "--help"],
            "drdrill validate (no -i)": [*drdrill, "validate", DRILL],
            # the inventory cache (executors/inventory_cache.py) filled by the warm-up round
            "drdrill validate -i": validate_i,
            "drdrill validate -i (cache off)": validate_i,
        }
        envs = {name: env for name in commands}
        envs["drdrill validate -i (cache off)"] = {**env, "DRDRILL_CACHE_DIR": ""}
        if chaos is not None:
            commands["chaos --help"] = [*chaos, "--no-version-check", "--help"]
            envs["chaos --help"] = env
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        contenders = {name: (lambda argv=argv, name=name: timed(argv, envs[name], cwd=args.root,
                                                              cpu=cpu[name]))
                      for name, argv in commands.items()}
        times = rounds(contenders, args.rounds)
    print(table(times, ["python -c pass"], "start-up (wall time of the whole process)"))
    print()
    print(table({name: values[1:] for name, values in cpu.items()}, ["python -c pass"],
                "start-up (CPU time, user + system: steadier on a loaded machine)"))
    if chaos is None:
        print("(chaos not found: pass --chaos CMD to compare with Chaos Toolkit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
