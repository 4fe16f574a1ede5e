"""The harness's out-of-band hook: what a drill reaches when the service network cannot.

A real site has a management path besides the service network (a BMC/iLO, a console
server, a separate management VLAN, a cloud API). In the harness that path is the root
namespace itself: ``ip`` on the host side of a veth, and ``ip netns exec`` into a host's
namespace. Runbooks call it as a ``command`` probe step (argv, no shell), e.g.::

    - name: partition the primary
      probe: {type: command, argv: [drdrill-harness-oob, partition, db1]}
      disaster: true

Tests put an executable ``drdrill-harness-oob`` on PATH (``install_hook``) that runs this
file with the state file written by ``write_state`` (which hosts, veths, namespaces and
PostgreSQL data directories exist). Actions:

- ``partition HOST``  the host's veth goes down; everything inside keeps running
- ``heal HOST``       the veth comes back (and the namespace's route with it)
- ``fence HOST``      over the management path: stop the host's PostgreSQL at once
                      (``pg_ctl -m immediate``) and leave ``standby.signal`` and
                      ``drdrill.fenced`` in its data directory, like playbooks/pg-fence.yml
- ``status HOST``     print whether its link is up and its postmaster runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOOK_NAME = "drdrill-harness-oob"


def write_state(path: Path, harness: Any, pg: Any = None, pg_bin: Path | None = None,
                pg_user: str = "postgres") -> Path:
    """Describe a NetnsHarness (and optionally its PgPair) for the hook."""
    hosts: dict[str, dict[str, Any]] = {}
    for name, h in harness.hosts.items():
        hosts[name] = {"netns": h.netns, "veth": h.veth, "gateway": h.gateway,
                       "address": h.address}
    if pg is not None:
        for node in (pg.primary, pg.standby):
            hosts[node.host]["pg_data"] = str(node.data)
    state = {"subnet": harness.subnet, "hosts": hosts,
             "pg_bin": str(pg_bin) if pg_bin else None, "pg_user": pg_user}
    path.write_text(json.dumps(state, indent=2))
    return path


def install_hook(bin_dir: Path, state: Path) -> Path:
    """An executable ``drdrill-harness-oob`` in ``bin_dir`` bound to ``state``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    hook = bin_dir / HOOK_NAME
    hook.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{Path(__file__).resolve()}' "
                    f"--state '{state}' \"$@\"\n")
    hook.chmod(0o755)
    return hook


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()}")
    return done


def _as_pg(state: dict[str, Any], host: dict[str, Any], argv: Sequence[str],
           check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", "netns", "exec", host["netns"], "runuser", "-u", state["pg_user"], "--",
                 *argv], check=check)


def partition(state: dict[str, Any], host: dict[str, Any]) -> str:
    _run(["ip", "link", "set", host["veth"], "down"])
    return f"link {host['veth']} down"


def heal(state: dict[str, Any], host: dict[str, Any]) -> str:
    _run(["ip", "link", "set", host["veth"], "up"])
    _run(["ip", "-n", host["netns"], "route", "replace", state["subnet"], "via",
          host["gateway"]])
    return f"link {host['veth']} up"


def fence(state: dict[str, Any], host: dict[str, Any]) -> str:
    if not host.get("pg_data") or not state.get("pg_bin"):
        raise SystemExit("fence: the state file names no PostgreSQL data dir for this host")
    data = host["pg_data"]
    stop = _as_pg(state, host, [f"{state['pg_bin']}/pg_ctl", "-D", data, "-m", "immediate",
                                "-w", "stop"], check=False)
    if stop.returncode != 0 and "Is server running?" not in stop.stderr:
        raise SystemExit(f"fence: pg_ctl stop failed: {stop.stderr.strip()}")
    _as_pg(state, host, ["touch", f"{data}/standby.signal", f"{data}/drdrill.fenced"])
    stopped = "stopped" if stop.returncode == 0 else "was not running"
    return f"postgres in {data} {stopped}; standby.signal and drdrill.fenced written"


def status(state: dict[str, Any], host: dict[str, Any]) -> str:
    link = _run(["ip", "-j", "link", "show", host["veth"]])
    up = "UP" in json.loads(link.stdout)[0].get("flags", [])
    line = f"link {'up' if up else 'down'}"
    if host.get("pg_data") and state.get("pg_bin"):
        pg = _as_pg(state, host, [f"{state['pg_bin']}/pg_ctl", "-D", host["pg_data"],
                                  "status"], check=False)
        line += f"; postgres {'running' if pg.returncode == 0 else 'not running'}"
    return line


ACTIONS = {"partition": partition, "heal": heal, "fence": fence, "status": status}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=HOOK_NAME, description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("host")
    args = parser.parse_args(argv)
    state = json.loads(args.state.read_text())
    host = state["hosts"].get(args.host)
    if host is None:
        print(f"unknown host {args.host!r}; known: {', '.join(state['hosts'])}",
              file=sys.stderr)
        return 2
    print(f"{args.host}: {ACTIONS[args.action](state, host)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
