"""What an isolated run measured (docs/isolated.md), from journal events alone.

The clone's RTO is the ordinary one: T0 is the end of the clone build (``t0`` source
``isolated_clone``: the clone is up as a standby of nothing), service_restored the first
passing probe of the clone. Its RPO is not the canary's (the canary writes to the clone
after it was promoted, so it can lose nothing of production): it is the data the clone
lacks — the standby's lag at clone time, from the database's own positions, reported by the
clone build's ``[fact isolated_clone]`` task (pg-clone.yml):

- ``lag_bytes``: the primary's ``pg_current_wal_lsn()`` read right after the copy finished,
  minus the clone's ``pg_last_wal_replay_lsn()`` (>= 0);
- ``lag_s``: 0 when every transaction the primary had completed by then is completed on the
  clone too (``pg_snapshot_xmax`` of both: an exact zero); otherwise the primary's clock
  then minus the clone's newest replayed commit (``lag_s_kind: upper_bound``: a bound of
  the loss window, like the incident bound, never called measured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from drdrill.events import Event
from drdrill.measure.metrics import NOT_MEASURED, Results

FACT = "isolated_clone"
CLONE_LAG = "clone_lag"
EXACT = "exact"
UPPER_BOUND = "upper_bound"
BANNER = "ISOLATED TEST — production was not failed over"


def isolation_stamp(events: Sequence[Event]) -> dict[str, Any] | None:
    """run_started's ``isolated`` (None: not an isolated run)."""
    started = next((e for e in events if e.type == "run_started"), None)
    value = None if started is None else started.data.get("isolated")
    return dict(value) if isinstance(value, dict) else None


def clone_facts(events: Sequence[Event]) -> tuple[dict[str, Any] | None, str | None]:
    """(the clone build's report, None) or (None, why it is missing)."""
    fact = next((e for e in events if e.type == "fact" and e.data.get("name") == FACT), None)
    if fact is None:
        return None, "the clone build reported no positions (no isolated_clone fact)"
    text = str(fact.data.get("value") or "")  # "isolated clone: {...}"
    try:
        value = json.loads(text[text.find("{"):] if "{" in text else text)
    except ValueError:
        return None, "the clone build's isolated_clone fact is not JSON"
    if not isinstance(value, dict):
        return None, "the clone build's isolated_clone fact is not a mapping"
    return value, None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def isolated_summary(events: Sequence[Event]) -> dict[str, Any] | None:
    """The record's ``isolated`` field: what was cloned from where and when, its lag, what
    was skipped, and whether the teardown removed the clone (None: not an isolated run)."""
    stamp = isolation_stamp(events)
    if stamp is None:
        return None
    facts, why = clone_facts(events)
    facts = facts or {}
    finished = next((e for e in reversed(events) if e.type == "isolation_finished"), None)
    lag_bytes = _number(facts.get("lag_bytes"))
    return {
        "banner": BANNER,
        "cloned_from": facts.get("cloned_from"),
        "cloned_at": facts.get("cloned_at"),
        "clone_endpoint": facts.get("clone_endpoint"),
        "clone_data": facts.get("clone_data"),
        "clone_s": _number(facts.get("clone_s")),
        "clone_bytes": _number(facts.get("clone_bytes")),
        "position_delay_s": _number(facts.get("position_delay_s")),
        "lag_bytes": None if lag_bytes is None else int(lag_bytes),
        "lag_s": _number(facts.get("lag_s")),
        "lag_s_kind": facts.get("lag_s_kind"),
        "not_measured_reason": why,
        "teardown": finished.data.get("teardown") if finished else "not run",
        **stamp,
    }


def apply_clone_lag(results: Results, events: Sequence[Event],
                    rpo_objective: float) -> Results:
    """An isolated run's RPO is the clone's lag at clone time (module docstring)."""
    if isolation_stamp(events) is None:
        return results
    facts, why = clone_facts(events)
    lag = None if facts is None else _number(facts.get("lag_s"))
    if facts is None or lag is None:
        return replace(results, rpo_s=None, rpo_met=None, rpo_bound_s=None,
                       rpo_basis=NOT_MEASURED,
                       rpo_reason=f"isolated: {why or 'the clone lag in seconds is unknown'}")
    if facts.get("lag_s_kind") == EXACT:
        return replace(results, rpo_s=lag, rpo_met=lag <= rpo_objective, rpo_bound_s=None,
                       rpo_basis=CLONE_LAG,
                       rpo_reason="isolated: the standby's lag at clone time, from the "
                                  "database's positions (no completed transaction missing)")
    within = lag <= rpo_objective
    return replace(results, rpo_s=None, rpo_bound_s=lag, rpo_basis=CLONE_LAG,
                   rpo_met=True if within else None,
                   rpo_reason="isolated: an upper bound of the clone's loss window (the "
                              "primary's clock at clone time minus the clone's newest "
                              "replayed commit), not a measured RPO"
                              + ("" if within else "; above the objective, it is reported, "
                                 "not judged: a property of the copy, not a failover's loss"))
