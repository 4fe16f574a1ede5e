"""The verdict of a completed run — computed here and only here (the loop journals it in
``run_finished``; the record, the reports and the terminal read it from there).

Exit status 1 (DESIGN.md) covers an objective or verification missed *or not measurable*:
an unreadable canary store is "RPO not measured", a failure, and never a data loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drdrill.measure.metrics import NOT_MEASURED, Results

CLONE_LAG = "clone_lag"  # measure/isolation.py's rpo_basis of an isolated run


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None


def data_verified(steps: Sequence[Mapping[str, Any]], lost_writes: int | None,
                  has_canary: bool) -> bool | None:
    """Every main ``verification: true`` step passed; without such steps, no acknowledged
    canary write was lost. None when neither applies (or the loss was not measured)."""
    checks = [s for s in steps if s.get("verification") and s.get("phase") == "main"]
    if checks:
        return all(s.get("status") == "ok" for s in checks)
    if has_canary and lost_writes is not None:
        return lost_writes == 0
    return None


def decide(results: Results, failed_steps: Sequence[str]) -> Verdict:
    """passed only when nothing failed and nothing that was asked for went unmeasured.
    A failed ``verification: true`` step is a failed step (the data verification); lost
    writes within the RPO objective are the objective's business, not a second verdict."""
    reasons: list[str] = []
    if results.rto_met is False:
        reasons.append("RTO objective missed")
    if results.rto_basis == "bound" and results.rto_met is None:
        reasons.append(f"RTO not measured (incident): the service was already up when "
                       f"drdrill's probe began; its bound {results.rto_bound_s:g}s is above "
                       "the objective")
    if results.rpo_met is False:
        reasons.append("RPO objective missed")
    if results.rpo_basis == "bound" and results.rpo_met is None:
        reasons.append(f"RPO not measured (incident): its bound {results.rpo_bound_s:g}s "
                       "is above the objective")
    if results.rpo_basis == CLONE_LAG and results.lost_writes:
        # the recovered clone dropped writes it had acknowledged: a real loss, judged
        reasons.append(f"{results.lost_writes} acknowledged writes lost on the recovered "
                       "clone (isolated)")
    if results.rpo_basis == NOT_MEASURED:
        reasons.append(f"RPO not measured: {results.rpo_reason or 'canary read-back failed'}")
    reasons += [f"step {name!r} failed" for name in failed_steps]
    return Verdict("failed" if reasons else "passed", tuple(reasons))


def verdict_notes(results: Results) -> list[str]:
    """What the record reports next to the verdict without judging it. An isolated run
    fails nothing over: the clone's lag at clone time is a property of the copy (how far
    behind production the clone started, including writes between the copy's end and the
    reading of the primary's position), not data a failover lost, so a lag bound above the
    RPO objective is reported here and in ``rpo_reason`` — not a reason to fail the run
    (docs/isolated.md). An exact lag, or a bound within the objective, is judged as usual."""
    if results.rpo_basis == CLONE_LAG and results.rpo_met is None and \
            results.rpo_bound_s is not None:
        return [f"RPO not judged (isolated): the clone's lag bound {results.rpo_bound_s:g}s "
                "is above the RPO objective; it bounds how far behind production the clone "
                "started, not data lost by a failover"]
    return []

