"""Fixtures for tests against real SSH hosts in network namespaces (root only).

- ``netns_factory(hosts, groups=..., host_vars=...)`` → a started NetnsHarness, torn down
  after the test (leftovers asserted empty).
- ``ssh_hosts`` → db1 (group primary) and db2 (group standby), each with its own
  ``conf_dir`` host var (namespaces share the filesystem: per-host files need per-host paths).
- ``pool`` → an SshPool closed after the test.

Every test here skips with the reason when not root or when ip/sshd/ssh-keygen are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_TESTS = Path(__file__).resolve().parents[2]
if str(_TESTS) not in sys.path:  # `harness` lives in tests/ (pytest pythonpath = ["tests"])
    sys.path.insert(0, str(_TESTS))

from drdrill.executors.ssh import SshPool  # noqa: E402
from harness.drills import create_database  # noqa: E402
from harness.netns import NetnsHarness, missing_requirements  # noqa: E402
from harness.pg import PgPair  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = missing_requirements()
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.root)
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture()
def netns_factory(tmp_path: Path) -> Iterator[Callable[..., NetnsHarness]]:
    started: list[NetnsHarness] = []

    def make(hosts: list[str], **kwargs: Any) -> NetnsHarness:
        harness = NetnsHarness(hosts, **kwargs).up()
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):
        harness.down()
        assert harness.leftovers() == []


@pytest.fixture()
def ssh_hosts(netns_factory: Callable[..., NetnsHarness], tmp_path: Path) -> NetnsHarness:
    conf = {name: {"conf_dir": str(tmp_path / f"{name}-conf")} for name in ("db1", "db2")}
    for host_vars in conf.values():
        Path(host_vars["conf_dir"]).mkdir()
    return netns_factory(["db1", "db2"], groups={"primary": ["db1"], "standby": ["db2"]},
                         host_vars=conf)


@pytest.fixture()
def pool() -> Iterator[SshPool]:
    with SshPool() as p:
        yield p


@pytest.fixture()
def pg_hosts(netns_factory: Callable[..., NetnsHarness]) -> Iterator[tuple[NetnsHarness, PgPair]]:
    """db1 primary streaming to db2 (PostgreSQL in two namespaces) with the drdrill database:
    the pair the shipped failover drill runs against over SSH."""
    harness = netns_factory(["db1", "db2"])
    with PgPair(harness, "db1", "db2") as pg:
        pg.wait_streaming()
        create_database(pg)
        yield harness, pg
