"""The service part of ``drdrill lab repair``: both sites up on version N behind HAProxy.

An interrupted site-failover or upgrade-rollback drill (or a real incident) can leave a
site killed, frozen (SIGSTOPped), or running version N+1, and HAProxy stopped or not yet
routing to a restarted site. The repair thaws frozen sites, (re)starts every site that is
down or not on version N, starts HAProxy if it is not running, then waits until HAProxy
routes to both sites again (two passing health checks each). Every action is said, in
order; a lab without the service is left alone.
"""

from __future__ import annotations

import signal
import time

from drdrill.errors import LabError
from drdrill.lab.config import LabConfig, Say
from drdrill.lab.osuser import lab_os_user
from drdrill.lab.service.lab import (
    ServicePorts,
    ServiceStatus,
    _section,
    haproxy_cfg,
    haproxy_of,
    service_status,
    sites_of,
)
from drdrill.lab.service.sites import VERSION_N, SiteProc, current_user

ROUTED_TIMEOUT_S = 20.0


def _repair_site(site: SiteProc, say: Say) -> None:
    state, version = site.state, site.version
    if state == "frozen":
        site.signal(signal.SIGCONT)
        deadline = time.monotonic() + 2.0
        while site.state == "frozen" and time.monotonic() < deadline:
            time.sleep(0.01)
        say(f"thawed {site.name} (it was frozen)")
        state = site.state
    if state == "running" and version == VERSION_N:
        return
    site.start(VERSION_N, current_user())
    why = "it was down" if state == "down" else f"it ran version {version or '?'}"
    say(f"started {site.name} on version {VERSION_N} ({why})")


def _wait_routed(cfg: LabConfig) -> ServiceStatus:
    """HAProxy's checks need two passes per site before it routes to it again."""
    deadline = time.monotonic() + ROUTED_TIMEOUT_S
    while True:
        status = service_status(cfg)
        if status is None:
            raise LabError(f"the service of the lab {cfg.lab_dir} disappeared")
        if status.healthy and all(s.haproxy == "UP" for s in status.sites):
            return status
        if time.monotonic() > deadline:
            view = ", ".join(f"{s.name} {s.state}/{s.health}/{s.haproxy or '?'}"
                             for s in status.sites)
            raise LabError(f"HAProxy does not route to both sites within "
                           f"{ROUTED_TIMEOUT_S:g}s: {view}",
                           hint="drdrill lab status; the sites' logs are in the lab's "
                                "service/ directory")
        time.sleep(0.1)


def service_repair(cfg: LabConfig, say: Say) -> ServiceStatus | None:
    """Repair the lab's service (see the module docstring); None when it has none."""
    section = _section(cfg)
    if section is None:
        return None
    for site in sites_of(cfg, section):
        _repair_site(site, say)
    proxy = haproxy_of(cfg, section)
    assert proxy is not None
    if not proxy.running:
        ports = ServicePorts(int(section["haproxy_port"]),
                             int(section["sites"]["site-a"]["port"]),
                             int(section["sites"]["site-b"]["port"]))
        proxy.start(haproxy_cfg(cfg, ports), lab_os_user())
        say("started HAProxy (it was not running)")
    status = _wait_routed(cfg)
    say("the service is whole: HAProxy routes to site-a (active) and site-b (backup), "
        f"both on version {VERSION_N}")
    return status
