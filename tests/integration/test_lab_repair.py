"""`drdrill lab repair` against real PostgreSQL, from each state an interrupted drill can
leave the lab in; afterwards pg1 is the primary, pg2 streams from it, and every write a
client had acknowledged (written through the service DSN, or straight to the node that was
primary) is on pg1. Ports 57301/57302."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from drdrill.lab import LabConfig, lab_down, lab_status, lab_up, read_env
from drdrill.lab.api import _lab_bin_dir, _nodes
from drdrill.lab.node import Node
from drdrill.lab.osuser import lab_os_user
from drdrill.lab.repair import lab_repair
from labkit import skip_without_postgres

pytestmark = [pytest.mark.integration, pytest.mark.lab]
skip_without_postgres()


@pytest.fixture(scope="module")
def lab() -> Iterator[LabConfig]:
    base = Path(tempfile.mkdtemp(prefix="drdrill-repair-", dir="/tmp"))
    base.chmod(0o755)
    config = LabConfig(base / "lab", 57301, 57302)
    try:
        assert lab_up(config).healthy
        yield config
    finally:
        lab_down(config, purge=True)
        shutil.rmtree(base, ignore_errors=True)


def _nodes_of(config: LabConfig) -> tuple[Node, Node]:
    return _nodes(config, _lab_bin_dir(read_env(config)), lab_os_user())


def _write(node: Node, tag: str) -> None:
    with node.connect("drdrill") as conn:
        conn.execute("create table if not exists repair_t (tag text primary key)")
        conn.execute("insert into repair_t values (%s)", (tag,))


def _tags_on(node: Node) -> set[str]:
    with node.connect("drdrill") as conn:
        return {str(r[0]) for r in conn.execute("select tag from repair_t").fetchall()}


def _promote(node: Node) -> None:
    node.user.run([node.bin("pg_ctl"), "-D", str(node.data), "-w", "promote"])


def swapped(pg1: Node, pg2: Node, tag: str) -> None:
    pg1.stop("immediate")
    _promote(pg2)
    _write(pg2, tag)  # acknowledged on the new primary: must survive the switch back


def swapped_old_primary_down_and_fenced(pg1: Node, pg2: Node, tag: str) -> None:
    swapped(pg1, pg2, tag)
    pg1.user.write_file(pg1.data / "drdrill.fenced", "fenced by a drill\n")


def split_brain(pg1: Node, pg2: Node, tag: str) -> None:
    swapped(pg1, pg2, tag)
    pg1.start()  # no standby.signal: a second primary


def none_running(pg1: Node, pg2: Node, tag: str) -> None:
    _write(pg1, tag)
    pg2.stop("fast")
    pg1.stop("immediate")


def both_standbys(pg1: Node, pg2: Node, tag: str) -> None:
    _write(pg1, tag)
    pg1.stop("fast")
    pg1.user.write_file(pg1.data / "standby.signal", "")
    pg1.write_node_conf(pg2.port)  # pg1 streams from pg2, itself a standby: no primary
    pg1.start()


def standby_streams_from_nothing(pg1: Node, pg2: Node, tag: str) -> None:
    _write(pg1, tag)
    pg2.stop("fast")
    pg2.write_node_conf(57399)  # an upstream nobody listens on
    pg2.start()


@pytest.mark.parametrize("make_state", [swapped, swapped_old_primary_down_and_fenced,
                                        split_brain, none_running, both_standbys,
                                        standby_streams_from_nothing],
                         ids=lambda f: f.__name__)
def test_repair_returns_pg1_primary_pg2_streaming_without_losing_writes(
        lab: LabConfig, make_state: Callable[[Node, Node, str], None]) -> None:
    pg1, pg2 = _nodes_of(lab)
    if not lab_status(lab).healthy or lab_status(lab).swapped:
        lab_repair(lab, lambda _text: None)  # a previous case left it broken: start clean
    before = _tags_on(pg1) if _has_table(pg1) else set()
    tag = make_state.__name__
    make_state(pg1, pg2, tag)
    said: list[str] = []
    status = lab_repair(lab, said.append)
    assert said, "the repair says what it did"
    assert status.healthy, (said, status)
    assert status.primary is not None and status.primary.name == "pg1", said
    assert not status.swapped
    assert [s.name for s in status.standbys] == ["pg2"]
    assert all(s.upstream_port == pg1.port for s in status.standbys)
    assert before | {tag} <= _tags_on(pg1), said  # no acknowledged write lost
    assert not (pg1.data / "drdrill.fenced").exists()


def _has_table(node: Node) -> bool:
    try:
        _tags_on(node)
    except psycopg.Error:
        return False
    return True
