"""The Patroni lab's parts on their own, with the real binaries (seconds, no PostgreSQL):
lab/haproxy.py (start from a config text, refuse a taken port, reject a bad config with
haproxy's own message, stop the process), lab/etcd.py (healthy, then gone), and the
configuration drdrill generates (HAProxy accepts it; Patroni's timing rules hold).

Ports (this module only): HAProxy 58080-58082, etcd 58060/58061.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drdrill.errors import LabError
from drdrill.lab.config import LabConfig
from drdrill.lab.etcd import Etcd, find_etcd
from drdrill.lab.haproxy import Haproxy, find_haproxy, global_section
from drdrill.lab.osuser import lab_os_user
from drdrill.lab.patroni_conf import (
    LOOP_WAIT_S,
    RETRY_TIMEOUT_S,
    TTL_S,
    PatroniLab,
    PatroniPorts,
    haproxy_sections,
    node_config,
)
from drdrill.lab.process import alive

pytestmark = [pytest.mark.integration]


def _needs(finder: object) -> None:
    try:
        finder()  # type: ignore[operator]
    except LabError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def base() -> Iterator[Path]:
    """A world-traversable dir (as root the daemons run as the lab's account, which cannot
    enter pytest's 0700 tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="drdrill-patroni-parts-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cfg(port: int, backend_port: int) -> str:
    return global_section() + (f"frontend f\n    bind 127.0.0.1:{port}\n    default_backend b\n"
                               f"backend b\n    server s 127.0.0.1:{backend_port}\n")


def test_haproxy_starts_refuses_a_taken_port_and_stops(base: Path) -> None:
    _needs(find_haproxy)
    user = lab_os_user()
    proxy = Haproxy("one", base / "hp", 58080)
    pid = proxy.start(_cfg(58080, 58081), user)
    try:
        assert proxy.running and proxy.pid == pid
        with socket.create_connection(("127.0.0.1", 58080), timeout=2):
            pass
        with pytest.raises(LabError, match="58080 .* already in use by haproxy"):
            Haproxy("two", base / "hp", 58080).start(_cfg(58080, 58081), user)
    finally:
        proxy.stop()
    assert not alive(pid) and not proxy.running and not proxy.pid_file.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 58080), timeout=1)


def test_haproxy_bad_config_is_reported_with_haproxys_words(base: Path) -> None:
    _needs(find_haproxy)
    proxy = Haproxy("bad", base / "hp", 58082)
    with pytest.raises(LabError, match="invalid configuration .*unknown keyword 'nonsense'"):
        proxy.start("nonsense here\n", lab_os_user())
    assert not proxy.running


def test_missing_haproxy_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRDRILL_HAPROXY", "/nonexistent/haproxy")
    with pytest.raises(LabError) as info:
        find_haproxy()
    assert "apt-get install haproxy" in str(info.value)


def test_etcd_healthy_then_gone(base: Path) -> None:
    _needs(find_etcd)
    etcd = Etcd(base / "etcd", 58060, 58061)
    pid = etcd.start(lab_os_user())
    try:
        assert etcd.healthy() and etcd.pid == pid
    finally:
        etcd.stop()
    assert not alive(pid) and not etcd.healthy()


def test_generated_haproxy_config_is_valid(base: Path) -> None:
    _needs(find_haproxy)
    lab = PatroniLab(LabConfig(base / "lab"), PatroniPorts.from_base(58083))
    text = global_section() + haproxy_sections(lab)
    assert "option httpchk GET /primary" in text and "option httpchk GET /replica" in text
    proxy = Haproxy("check", base / "hp", 58090)
    user = lab_os_user()
    user.make_dir(proxy.run_dir, 0o755)
    user.write_file(proxy.cfg_file, text, mode=0o644)
    proxy._check(find_haproxy(), user)  # raises LabError with haproxy's message if invalid


def test_patroni_timing_settings_are_what_patroni_will_run() -> None:
    """Patroni raises ttl below 20 to 20 and requires loop_wait + 2 × retry_timeout ≤ ttl:
    the figures in the runbook and docs assume the values it really runs with."""
    assert TTL_S >= 20 and LOOP_WAIT_S + 2 * RETRY_TIMEOUT_S <= TTL_S
    lab = PatroniLab(LabConfig(Path("/tmp/x")), PatroniPorts.from_base())
    dcs = node_config(lab, "pat1", Path("/usr/lib/postgresql/15/bin"))["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (
        TTL_S, LOOP_WAIT_S, RETRY_TIMEOUT_S)
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["synchronous_mode"] is True  # the runbook's rpo: 0s rests on it
    text = (Path(__file__).resolve().parents[2] / "drills" / "patroni-failover.yml").read_text()
    assert f"ttl {TTL_S} s" in text and f"loop_wait {LOOP_WAIT_S} s" in text
