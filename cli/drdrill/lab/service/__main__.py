"""``python -m drdrill.lab.service [--lab-dir D] ACTION [SITE]``: the service's control command.

Playbooks call it through the inventory's ``service_ctl`` (lab.env.json's ``ctl``); a real
deployment gives the inventory its own command with the same verbs. Every action prints one
JSON line — ``{"site", "action", "changed", ...}`` — so a playbook's ``changed_when`` is
truthful; failures exit 1 with the reason on stderr.

    serve SITE              run the site in the foreground (what ``start`` spawns)
    start SITE [--version V] run it with version V (default: the one it last ran), wait healthy
    kill SITE               SIGKILL: the process dies, connections are refused
    freeze SITE / thaw SITE SIGSTOP / SIGCONT: connections hang (a blocked network path)
    stop SITE               SIGTERM
    status                  both sites and HAProxy, as JSON
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from drdrill.errors import DrdrillError
from drdrill.lab.config import LabConfig, default_lab_dir
from drdrill.lab.service.app import VERSIONS, Site, serve
from drdrill.lab.service.lab import service_status, sites_of
from drdrill.lab.service.sites import SITE_NAMES, SiteProc, current_user


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m drdrill.lab.service")
    parser.add_argument("--lab-dir", type=Path, default=None)
    parser.add_argument("action", choices=["serve", "start", "kill", "freeze", "thaw", "stop",
                                           "status"])
    parser.add_argument("site", nargs="?", choices=SITE_NAMES)
    parser.add_argument("--version", choices=VERSIONS, default=None)
    return parser


def _site(cfg: LabConfig, name: str) -> SiteProc:
    found = next((s for s in sites_of(cfg) if s.name == name), None)
    if found is None:
        raise DrdrillError(f"no service in the lab {cfg.lab_dir}",
                           hint="drdrill lab up --with service")
    return found


def _serve(cfg: LabConfig, site: SiteProc) -> None:
    env = json.loads(cfg.env_file.read_text())
    version = site.version or VERSIONS[0]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(Site(site.name, version, str(env["service_dsn"])), cfg.host, site.port)


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = LabConfig(args.lab_dir or default_lab_dir())
    if args.action == "status":
        status = service_status(cfg)
        print(json.dumps(status.to_json() if status else None))
        return 0
    if args.site is None:
        raise DrdrillError(f"{args.action} needs a site: {' or '.join(SITE_NAMES)}")
    site = _site(cfg, args.site)
    if args.action == "serve":
        _serve(cfg, site)
        return 0
    before = site.version
    if args.action == "start":
        changed = site.start(args.version or site.version or VERSIONS[0], current_user())
    elif args.action == "kill":
        changed = site.kill()
    elif args.action == "stop":
        changed = site.stop()
    else:
        frozen = site.state == "frozen"
        wanted = args.action == "freeze"
        changed = frozen != wanted and site.signal(
            signal.SIGSTOP if wanted else signal.SIGCONT)
        deadline = time.monotonic() + 2.0
        while changed and (site.state == "frozen") != wanted and time.monotonic() < deadline:
            time.sleep(0.01)
    print(json.dumps({"site": site.name, "action": args.action, "changed": changed,
                      "state": site.state, "version": site.version,
                      "previous_version": before}))
    return 0


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except DrdrillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
