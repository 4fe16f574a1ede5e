"""``lab_repair``: bring an interrupted lab back to pg1 primary -> pg2 streaming standby.

A drill interrupted anywhere can leave: roles swapped (pg2 primary, pg1 down or a standby),
no node running, both nodes standbys (fenced, or a promote cut short), two primaries (a
promote, then the old primary restarted), a standby streaming from nothing, a fence marker.
The repair keeps the data of the node clients last wrote to and rebuilds the other from it,
so no acknowledged write is lost while a primary exists:

1. remove fence markers, start every node that is down (as it is configured);
2. pick the source: the only primary; of two primaries the one on the newer timeline (the
   promoted one; pg1 on a tie); with no primary, promote the standby that replayed most;
3. the other node is re-cloned from the source (pg_basebackup) unless it already streams;
4. when the source is pg2: once pg1 has replayed everything, a marker row is written on
   pg2, pg2 is stopped (a clean stop sends its last WAL to pg1), pg1 is promoted, the row is
   checked on pg1, and pg2 is re-cloned from pg1.
5. with the service (``lab up --with service``): lab/service/repair.py thaws or restarts
   the sites on version N and makes HAProxy route to both again.
Each action is returned as a sentence, in order, for the command to print.
"""

from __future__ import annotations

import time

import psycopg

from drdrill.errors import LabError
from drdrill.lab.api import (
    _clone_standby,
    _effective,
    _lab_bin_dir,
    _nodes,
    _wait_healthy,
    read_env,
)
from drdrill.lab.clones import remove_clone
from drdrill.lab.config import LAB_DB, LabConfig, LabStatus, Say
from drdrill.lab.node import Node
from drdrill.lab.osuser import lab_os_user

CATCH_UP_S = 60.0


def _one(node: Node, sql: str) -> object:
    with node.connect(LAB_DB) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


def _start_down_nodes(nodes: tuple[Node, Node], say: Say) -> None:
    for node in nodes:
        marker = node.data / "drdrill.fenced"
        if marker.exists():
            marker.unlink()
            say(f"removed the fence marker of {node.name}")
        others_primary = any(o.status().role == "primary" for o in nodes if o is not node)
        if node.initialized and node.pid is None and not node.configured_standby \
                and others_primary:
            say(f"left {node.name} down: the other node is the primary (starting "
                f"{node.name} would make a second one that clients could write to)")
            continue
        if node.initialized and node.pid is None:
            try:
                node.start()
            except LabError as exc:  # it will be rebuilt from the other node
                say(f"{node.name} does not start ({exc.message.splitlines()[0]})")
                continue
            say(f"started {node.name} "
                f"(as a {'standby' if node.configured_standby else 'primary'})")


def _timeline(node: Node) -> int:
    return int(str(_one(node, "select timeline_id from pg_control_checkpoint()")))


def _promote(node: Node, say: Say, why: str) -> None:
    node.user.run([node.bin("pg_ctl"), "-D", str(node.data), "-w", "-t", "60", "promote"],
                  timeout=90)
    node.write_node_conf(None)  # no primary_conninfo left behind on a primary
    say(f"promoted {node.name} ({why})")


def _pick_source(nodes: tuple[Node, Node], say: Say) -> Node:
    roles = {n.name: n.status().role for n in nodes}
    primaries = [n for n in nodes if roles[n.name] == "primary"]
    if len(primaries) == 1:
        say(f"{primaries[0].name} is the only primary: keeping its data")
        return primaries[0]
    if len(primaries) == 2:
        source = max(primaries, key=lambda n: (_timeline(n), n.name == "pg1"))
        say(f"both nodes are primaries (split brain): keeping {source.name} (timeline "
            f"{_timeline(source)}), the other is rebuilt from it")
        return source
    standbys = [n for n in nodes if roles[n.name] == "standby"]
    if not standbys:  # nothing runs: a node whose start failed has no usable data here
        raise LabError("no node of the lab can be started",
                       hint="see the logs in the lab's log/ directory, or start over: "
                            "drdrill lab down --purge && drdrill lab up")
    source = max(standbys, key=lambda n: (int(str(_one(
        n, "select pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint") or 0)),
        n.name == "pg1"))
    _promote(source, say, "no primary: the standby that replayed the most WAL")
    return source


def _streams_from(node: Node, source: Node) -> bool:
    state = node.status()
    return (state.role == "standby" and state.replication == "streaming"
            and state.upstream_port == source.port)


def _rebuild(node: Node, source: Node, say: Say) -> None:
    if _streams_from(node, source):
        say(f"{node.name} already streams from {source.name}")
        return
    node.stop("fast")
    _clone_standby(node, source)
    node.start()
    say(f"rebuilt {node.name} as a streaming standby of {source.name} (pg_basebackup)")


def _wait_replayed(standby: Node, primary: Node) -> None:
    target = str(_one(primary, "select pg_current_wal_lsn()::text"))
    deadline = time.monotonic() + CATCH_UP_S
    while time.monotonic() < deadline:
        caught = _one(standby, f"select pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
        if caught is True:
            return
        time.sleep(0.2)
    raise LabError(f"{standby.name} did not catch up with {primary.name} in {CATCH_UP_S:g}s")


def _switch_back(pg1: Node, pg2: Node, say: Say) -> None:
    """pg2 primary, pg1 streaming from it -> pg1 primary, with a written row as proof."""
    _wait_replayed(pg1, pg2)
    with pg2.connect(LAB_DB) as conn:
        conn.execute("create table if not exists drdrill_repair_check "
                     "(id bigserial primary key, at timestamptz not null default now())")
        row = conn.execute("insert into drdrill_repair_check default values returning id"
                           ).fetchone()
    marker = int(str(row[0])) if row else 0
    _wait_replayed(pg1, pg2)
    pg2.stop("fast")
    say("stopped pg2 (a clean stop: its last WAL reached pg1)")
    _promote(pg1, say, "switch back: pg1 is the primary again")
    try:
        found = _one(pg1, f"select count(*) from drdrill_repair_check where id = {marker}")
    except psycopg.Error as exc:
        raise LabError(f"cannot check the last write on pg1: {exc}") from exc
    if found != 1:
        raise LabError(f"the last write on pg2 (drdrill_repair_check id {marker}) is not on "
                       "pg1; pg2's data dir is untouched", hint="inspect both nodes' logs")
    say(f"checked: pg2's last write (drdrill_repair_check id {marker}) is on pg1")
    _clone_standby(pg2, pg1)
    pg2.start()
    say("rebuilt pg2 as a streaming standby of pg1 (pg_basebackup)")


def lab_repair(config: LabConfig, say: Say) -> LabStatus:
    """Repair the lab (see the module docstring); ``say`` gets each action as it is done."""
    env = read_env(config)
    if env is None:
        raise LabError(f"no lab in {config.lab_dir}", hint="drdrill lab up")
    cfg = _effective(config, env)
    bin_dir = _lab_bin_dir(env)
    user = lab_os_user()
    pg1, pg2 = _nodes(cfg, bin_dir, user)
    if not pg1.initialized and not pg2.initialized:
        raise LabError(f"the lab in {cfg.lab_dir} has no data", hint="drdrill lab up")
    remove_clone(cfg, bin_dir, user, say)  # a run --isolated that never tore down
    _start_down_nodes((pg1, pg2), say)
    source = _pick_source((pg1, pg2), say)
    other = pg2 if source is pg1 else pg1
    _rebuild(other, source, say)
    if source is pg2:
        _switch_back(pg1, pg2, say)
    status = _wait_healthy(cfg, bin_dir, user, (), timeout=20.0)
    from drdrill.lab.service.repair import service_repair  # lazy, like every lab extra

    service_repair(cfg, say)  # --with service: both sites on version N behind HAProxy
    from drdrill.lab.patroni_repair import patroni_repair

    patroni_repair(cfg, say)  # --with patroni: a leader, a streaming replica, HAProxy
    return status
