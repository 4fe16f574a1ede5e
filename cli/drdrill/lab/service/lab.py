"""``drdrill lab up --with service``: two sites of the transfer service behind one HAProxy.

HAProxy sends every request to site-a while its ``/health`` passes and to site-b (a
``backup`` server) otherwise — an active/standby pair of sites, as a market-data or payments
front end runs them. Health checks every 300 ms, a server is down after 2 failed checks and
up again after 2 passing ones; ``on-marked-down shutdown-sessions`` cuts requests hanging on
a site that was just marked down. No ``option redispatch``: a request that reached a dead
site fails (as a client sees it) until the checks take the site out.

The facts playbooks and runbooks need go to lab.env.json under ``service``: the HAProxy
URL, each site's URL, the client fallback list (the sites' URLs in order, for clients that
connect to the sites directly), the two versions and the control command (``ctl``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.errors import LabError
from drdrill.lab.config import LabConfig
from drdrill.lab.haproxy import Haproxy, global_section
from drdrill.lab.osuser import OsUser, lab_os_user
from drdrill.lab.service.sites import (
    MODULE,
    SITE_NAMES,
    VERSION_N,
    VERSION_NEXT,
    SiteProc,
    current_user,
    get_json,
)

SERVICE_PORT = 54340  # HAProxy; the sites default to the next two ports


@dataclass(frozen=True)
class ServicePorts:
    haproxy: int = SERVICE_PORT
    site_a: int = SERVICE_PORT + 1
    site_b: int = SERVICE_PORT + 2

    @classmethod
    def from_base(cls, haproxy: int) -> ServicePorts:
        return cls(haproxy, haproxy + 1, haproxy + 2)


def service_dir(cfg: LabConfig) -> Path:
    return cfg.lab_dir / "service"


def _env(cfg: LabConfig) -> dict[str, Any]:
    try:
        data = json.loads(cfg.env_file.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"no lab in {cfg.lab_dir}", hint="drdrill lab up") from exc
    return data if isinstance(data, dict) else {}


def _section(cfg: LabConfig) -> dict[str, Any] | None:
    try:
        section = _env(cfg).get("service")
    except LabError:
        return None
    return section if isinstance(section, dict) else None


def sites_of(cfg: LabConfig, section: dict[str, Any] | None = None) -> list[SiteProc]:
    section = section if section is not None else _section(cfg)
    if section is None:
        return []
    return [SiteProc(name, int(section["sites"][name]["port"]), service_dir(cfg), cfg.lab_dir,
                     cfg.host) for name in SITE_NAMES]


def haproxy_of(cfg: LabConfig, section: dict[str, Any] | None = None) -> Haproxy | None:
    section = section if section is not None else _section(cfg)
    if section is None:
        return None
    return Haproxy("service-haproxy", service_dir(cfg), int(section["haproxy_port"]), cfg.host)


def stats_socket(cfg: LabConfig) -> Path:
    return service_dir(cfg) / "service-haproxy.sock"


def haproxy_cfg(cfg: LabConfig, ports: ServicePorts) -> str:
    text = global_section(timeout_client="30s", timeout_server="30s")
    text = text.replace("global\n", f"global\n    stats socket {stats_socket(cfg)} mode 600 "
                        "level admin\n", 1)
    return text + "\n".join([
        "frontend transfer",
        f"    bind {cfg.host}:{ports.haproxy}",
        "    mode http",
        "    timeout client 30s",
        "    default_backend sites",
        "",
        "backend sites",
        "    mode http",
        "    timeout server 2s",
        "    timeout check 500ms",
        "    option httpchk GET /health",
        "    http-check expect status 200",
        "    default-server inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions",
        f"    server site-a {cfg.host}:{ports.site_a} check",
        f"    server site-b {cfg.host}:{ports.site_b} check backup",
        "",
    ])


def _write_section(cfg: LabConfig, ports: ServicePorts, user: OsUser) -> dict[str, Any]:
    base = f"http://{cfg.host}"
    urls = {"site-a": f"{base}:{ports.site_a}", "site-b": f"{base}:{ports.site_b}"}
    section = {
        "url": f"{base}:{ports.haproxy}", "haproxy_port": ports.haproxy,
        "sites": {name: {"port": getattr(ports, name.replace("-", "_")), "url": urls[name]}
                  for name in SITE_NAMES},
        "active_site": "site-a", "standby_site": "site-b",
        "fallback_urls": [urls[name] for name in SITE_NAMES],
        "versions": {"current": VERSION_N, "next": VERSION_NEXT},
        "ctl": [sys.executable, "-m", MODULE, "--lab-dir", str(cfg.lab_dir)],
        "dir": str(service_dir(cfg)),
    }
    env = {**_env(cfg), "service": section}
    tmp = cfg.env_file.with_name("lab.env.json.tmp")
    tmp.write_text(json.dumps(env, indent=2) + "\n")
    tmp.chmod(0o644)
    tmp.replace(cfg.env_file)
    return section


def service_up(cfg: LabConfig, ports: ServicePorts | None = None) -> ServiceStatus:
    """Start (idempotently) both sites and HAProxy on a lab whose PostgreSQL is up. An
    existing service keeps its ports and each site the version it last ran."""
    user = lab_os_user()
    old = _section(cfg)
    if old is not None:
        ports = ServicePorts(int(old["haproxy_port"]), int(old["sites"]["site-a"]["port"]),
                             int(old["sites"]["site-b"]["port"]))
    ports = ports or ServicePorts()
    env = _env(cfg)
    from drdrill.lab.service.app import ensure_schema  # psycopg: only when starting it

    try:
        ensure_schema(str(env["service_dsn"]))
    except Exception as exc:
        raise LabError(f"the service's database is not reachable: {exc}",
                       hint="drdrill lab status (the PostgreSQL lab must be up)") from exc
    user.make_dir(service_dir(cfg), 0o755)
    section = _write_section(cfg, ports, user)
    for site in sites_of(cfg, section):
        site.start(site.version or VERSION_N, current_user())
    proxy = haproxy_of(cfg, section)
    assert proxy is not None
    if not proxy.running:
        proxy.start(haproxy_cfg(cfg, ports), user)
    status = service_status(cfg)
    assert status is not None  # the section was just written
    return status


def service_down(cfg: LabConfig) -> list[str]:
    """Stop HAProxy and both sites; returns what it stopped."""
    stopped: list[str] = []
    section = _section(cfg)
    proxy = haproxy_of(cfg, section)
    if proxy is not None and proxy.running:
        proxy.stop()
        stopped.append("haproxy")
    for site in sites_of(cfg, section):
        if site.stop():
            stopped.append(site.name)
    return stopped


@dataclass(frozen=True)
class SiteStatus:
    name: str
    port: int
    state: str  # running | frozen | down
    pid: int | None
    version: str | None  # as the site answers it (else the version it was started with)
    health: str  # ok | the error
    haproxy: str  # HAProxy's view: UP / DOWN / ... ("" when unknown)


@dataclass(frozen=True)
class ServiceStatus:
    url: str
    haproxy_pid: int | None
    sites: tuple[SiteStatus, ...]
    fallback_urls: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return self.haproxy_pid is not None and all(s.health == "ok" for s in self.sites)

    def lines(self) -> list[str]:
        """What ``drdrill lab status`` prints for the service."""
        proxy = f"pid {self.haproxy_pid}" if self.haproxy_pid else "NOT running"
        out = [f"service {self.url}  (HAProxy {proxy}; "
               f"{'healthy' if self.healthy else 'NOT healthy'})",
               f"  {'site':<7} {'state':<8} {'port':>5} {'pid':>7}  {'version':<8} "
               f"{'health':<10} haproxy"]
        for s in self.sites:
            pid = "" if s.pid is None else str(s.pid)
            role = "active" if s.name == "site-a" else "backup"
            out.append(f"  {s.name:<7} {s.state:<8} {s.port:>5} {pid:>7}  "
                       f"{s.version or '?':<8} {s.health[:30]:<10} {s.haproxy or '?'} ({role})")
        out.append(f"  client fallback list: {', '.join(self.fallback_urls)}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "haproxy_pid": self.haproxy_pid, "healthy": self.healthy,
                "fallback_urls": list(self.fallback_urls),
                "sites": [{"name": s.name, "port": s.port, "state": s.state, "pid": s.pid,
                           "version": s.version, "health": s.health, "haproxy": s.haproxy}
                          for s in self.sites]}


def _haproxy_view(proxy: Haproxy, cfg: LabConfig) -> dict[str, str]:
    """Server name -> status (UP, DOWN, ...) from HAProxy's ``show stat`` CSV."""
    text = proxy.show("show stat", stats_socket(cfg))
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    view: dict[str, str] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "sites" and row.get("svname") in SITE_NAMES:
            view[row["svname"]] = row.get("status", "")
    return view


def service_status(cfg: LabConfig) -> ServiceStatus | None:
    """None when the lab has no service (``lab up`` without ``--with service``)."""
    section = _section(cfg)
    if section is None:
        return None
    proxy = haproxy_of(cfg, section)
    assert proxy is not None
    view = _haproxy_view(proxy, cfg) if proxy.running else {}
    sites = []
    for site in sites_of(cfg, section):
        state = site.state
        status, body = get_json(f"{site.url}/health", 1.0) if state == "running" else (None, {})
        health = "ok" if status == 200 else (state if state != "running"
                                             else str(body.get("error") or f"HTTP {status}"))
        sites.append(SiteStatus(site.name, site.port, state, site.pid,
                                str(body.get("version") or site.version or "") or None,
                                health, view.get(site.name, "")))
    return ServiceStatus(str(section["url"]), proxy.pid, tuple(sites),
                         tuple(section.get("fallback_urls") or ()))
