"""``python -m drdrill.lab.patroni_ctl --lab-dir DIR crash|start|stop NODE``: what the Patroni
playbooks run on the lab to inject the fault and to restore a node (a real server's inventory
runs systemctl instead: docs/patroni.md). Prints one JSON line; exit 0, or 2 with a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from drdrill.errors import DrdrillError, LabError
from drdrill.lab.config import LabConfig
from drdrill.lab.patroni import crash_node, read_patroni_lab, start_node, stop_node
from drdrill.lab.patroni_conf import PATRONI_NODES


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drdrill.lab.patroni_ctl")
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("action", choices=("crash", "start", "stop"))
    parser.add_argument("node", choices=PATRONI_NODES)
    args = parser.parse_args(argv)
    try:
        lab = read_patroni_lab(LabConfig(args.lab_dir))
        if lab is None:
            raise LabError(f"no Patroni lab in {args.lab_dir}",
                           hint="drdrill lab up --with patroni")
        if args.action == "crash":
            result: dict[str, object] = {"killed": crash_node(lab, args.node)}
        elif args.action == "start":
            result = {"pid": start_node(lab, args.node)}
        else:
            stop_node(lab, args.node)
            result = {"stopped": True}
    except DrdrillError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps({"node": args.node, "action": args.action, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
