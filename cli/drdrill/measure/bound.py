"""The incident RPO bound (DESIGN.md "Incident mode RPO"), from journal events alone.

In a real outage there was no canary before the primary died, so acknowledged-write RPO
cannot be measured for it. The database itself says how much could have been lost: the
promoted standby's last replayed commit timestamp, read just before promotion (the
``last_replay_ts`` fact of tasks/promote.yml). Every commit the old primary acknowledged
after that instant and before T0 may be lost, so ``T0 - last_replay`` is an upper bound of
the loss window: a *bound*, never a measured RPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from drdrill.events import Event
from drdrill.measure.metrics import Results, probe_attempts

BOUND = "bound"
FACT = "last_replay_ts"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _mode(events: Sequence[Event]) -> str | None:
    started = next((e for e in events if e.type == "run_started"), None)
    return None if started is None else str(started.data.get("mode"))


def last_replay_epoch(events: Sequence[Event]) -> tuple[float | None, str | None]:
    """(epoch seconds, None) of the first promotion's last replayed commit, or (None, why)."""
    fact = next((e for e in events if e.type == "fact" and e.data.get("name") == FACT), None)
    if fact is None:
        return None, "no last replayed commit timestamp was read before promotion"
    value = str(fact.data.get("value") or "").strip()
    try:
        return float(value), None
    except ValueError:
        return None, (f"the standby reported no replayed commit before promotion "
                      f"({value or 'empty'!s})")


def rpo_bound_s(events: Sequence[Event]) -> tuple[float | None, str | None]:
    """(T0 - last replayed commit, None), or (None, the reason it is unknown)."""
    t0 = next((e for e in events if e.type == "t0"), None)
    if t0 is None:
        return None, "no T0 in the journal"
    replayed, why = last_replay_epoch(events)
    if replayed is None:
        return None, why
    return round(max(0.0, _epoch(t0.wall) - replayed), 3), None


def apply_bound(results: Results, events: Sequence[Event], rpo_objective: float) -> Results:
    """Incident mode: the canary started after the outage, so its writes say nothing about
    the outage's loss; RPO is the database's bound instead (a runbook with neither a canary
    nor a bound is left alone). ``rpo_met`` is True only when
    the bound itself is within the objective (a bound above it proves nothing: None)."""
    if _mode(events) != "incident":
        return results
    bound, why = rpo_bound_s(events)
    asked = any(e.type in ("canary_write", "canary_readback") or
                (e.type == "fact" and e.data.get("name") == FACT) for e in events)
    if bound is None and not asked:  # this runbook measures no RPO at all
        return results
    if bound is None:
        return replace(results, rpo_s=None, rpo_met=None, rpo_bound_s=None,
                       rpo_basis="not_measured",
                       rpo_reason=f"incident mode: no pre-outage canary, and {why}")
    return replace(results, rpo_s=None, rpo_bound_s=bound, rpo_basis=BOUND,
                   rpo_met=True if bound <= rpo_objective else None,
                   rpo_reason="incident mode: an upper bound from the promoted standby's last "
                              "replayed commit, not a measured RPO")


def apply_rto_bound(results: Results, events: Sequence[Event], rto_objective: float
                    ) -> Results:
    """Incident mode: when the service probe's very first attempt already passed, the
    service came back before drdrill was watching (a load balancer that failed over on its
    own, a person who acted before the run). Its restoration instant was not seen, only that
    it lies between the declared T0 and that first attempt: ``rto_s`` is None and
    ``rto_bound_s`` the upper bound; ``rto_met`` True only when the bound is within the
    objective. A probe that saw the service down first measures the RTO as usual."""
    if _mode(events) != "incident" or results.t0_source != "declared":
        return results
    if results.t0_mono is None or results.first_failure_after_t0_mono is not None:
        return results
    attempts = probe_attempts(events)
    if not attempts or not attempts[0][1] or attempts[0][0] < results.t0_mono:
        return results
    bound = round(max(0.0, attempts[0][0] - results.t0_mono), 6)
    return replace(results, rto_s=None, downtime_s=None, rto_basis=BOUND, rto_bound_s=bound,
                   rto_met=True if bound <= rto_objective else None,
                   rto_reason=f"incident mode: the service already answered drdrill's first "
                              f"probe, {bound:.3f}s after the declared T0; it was restored "
                              "at or before then (an upper bound, not a measured RTO)")
