"""``resume``: continue a run whose orchestrator died, from its journal alone.

Completed steps are not run again. The step that was in flight is run again only when it
is idempotent; otherwise the operator says whether it took effect (``--assume done|redo``).
Recorded checkpoints and T0 keep their original instants: the run clock is re-anchored on
the run's wall-clock origin, and the time drdrill was dead is journaled as a gap (no probe
results exist for it, so it can never count as uptime).
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drdrill.engine.context import AutoAnswer, Interaction, RunContext
from drdrill.engine.lock import environment_lock
from drdrill.engine.loop import DrillState
from drdrill.engine.runner import (
    ContextInputs,
    RunResult,
    default_executor,
    drive,
    open_context,
    secret_split,
    write_outputs,
)
from drdrill.engine.safety import check_auto_answer
from drdrill.engine.snapshot import inventory_unchanged
from drdrill.errors import BadInput
from drdrill.events import Clock, Event, EventHandler
from drdrill.executors.base import Executor
from drdrill.executors.inventory import Inventory, load_inventory
from drdrill.executors.proctree import kill_tree, processes_mentioning
from drdrill.exercise.runlink import resume_key
from drdrill.exercise.signing import sign_run
from drdrill.journal.record import RECORD_NAME, journal_last_hash
from drdrill.journal.store import JOURNAL_NAME, JournalWriter, parse_lines, read_events
from drdrill.journal.verify import RunDirEvidence, snapshot_problems
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.model import Runbook, Step


@dataclass(frozen=True)
class InFlight:
    step: Step
    attempt: int
    phase: str = "main"  # or "rollback": a rollback step is asked about the same way


def _wall_ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _inputs(run_dir: Path, meta: dict[str, object]) -> tuple[Runbook, Inventory]:
    """The runbook and playbooks exactly as run (snapshot); the inventory from its original
    path when unchanged (it may use paths relative to itself), else the snapshot."""
    inputs = meta.get("inputs") or {}
    assert isinstance(inputs, dict)
    inv_meta = meta.get("inventory") or {}
    assert isinstance(inv_meta, dict)
    _check_snapshot(run_dir)
    original = Path(str(inv_meta.get("path", "")))
    inventory = None
    if inventory_unchanged(original, run_dir):
        candidate = load_inventory(original)
        if candidate.sha256 == inv_meta.get("sha256"):
            inventory = candidate
    if inventory is None:
        inventory = load_inventory(run_dir / str(inputs.get("inventory")))
    extra = meta.get("extra_vars") or {}  # -e as journaled: {{ name }} endpoints use them
    runbook = load_runbook(run_dir / str(inputs.get("runbook")), inventory,
                           playbook_dir=run_dir / "runbook" / "playbooks",
                           extra_vars=extra if isinstance(extra, dict) else {}, strict=True)
    return runbook, inventory


def _check_snapshot(run_dir: Path) -> None:
    """Resume runs the steps from the snapshot: refuse to run inputs that are not what the
    run journaled (an edited vars file would run as if it had been there all along)."""
    lines = parse_lines((run_dir / JOURNAL_NAME).read_bytes())
    problems = snapshot_problems(RunDirEvidence(run_dir), lines)
    if problems:
        raise BadInput("the run's inputs snapshot (runbook/) is not what the run journaled: "
                       + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""),
                       hint="restore runbook/ from the evidence bundle, or start a new run")


def rebuild_state(events: Sequence[Event], runbook: Runbook, mode: str
                  ) -> tuple[DrillState, tuple[InFlight, ...]]:
    """The loop's state from the journal, and every step in flight at the crash (several
    when it came inside a parallel group), in step order."""
    state = DrillState(resumed=True)
    started: dict[tuple[str, int], int] = {}
    for event in events:
        data = event.data
        key = (str(data.get("phase", "main")), int(data.get("index", 0)))
        if event.type == "step_started":
            started[key] = int(data.get("attempt", 1))
        elif event.type == "step_finished":
            started.pop(key, None)
            target = state.done if key[0] == "main" else state.rollback_done
            target.add(key[1])
            if key[0] == "main" and data.get("status") not in ("ok", "aborted"):
                state.failed.append(str(data.get("name")))
            elif key[0] == "rollback" and data.get("status") != "ok":
                state.rollback_failed = True
        elif event.type == "t0":
            state.t0_seen = True
        elif event.type == "recovery_started":
            state.recovery_marked = True
        elif event.type == "canary_write":
            # skip one number: a write in flight at the crash may exist in the store
            state.next_canary_seq = max(state.next_canary_seq, int(data["seq"]) + 2)
        elif event.type == "rollback_started":
            state.rollback_announced = True
            # the policy "always" rolls back a run that did not abort: its verdict stands
            after_abort = data.get("after_abort", data.get("reason") != "policy: always")
            state.aborted_reason = str(data.get("reason")) if after_abort else None
    in_flight = []
    for (phase, index), attempt in sorted(started.items()):
        steps = runbook.steps_for(mode) if phase == "main" else runbook.rollback
        step = next((s for s in steps if s.index == index), None)
        if step is not None:
            in_flight.append(InFlight(step, attempt, phase))
    return state, tuple(in_flight)


def resume_drill(run_dir: Path, assume: str | None = None,
                 handlers: Sequence[EventHandler] = (), interaction: Interaction | None = None,
                 executor: Executor | None = None, cancel: threading.Event | None = None,
                 hard_stop: threading.Event | None = None, yes: bool = False,
                 exercise_key: Path | None = None) -> RunResult:
    journal_path = run_dir / JOURNAL_NAME
    if not journal_path.is_file():
        raise BadInput(f"{run_dir}: no journal.jsonl: not a run directory")
    events = read_events(journal_path)
    if not events or events[0].type != "run_started":
        raise BadInput(f"{journal_path}: does not start with run_started; cannot resume")
    finished = next((e for e in events if e.type == "run_finished"), None)
    if finished is not None and (run_dir / RECORD_NAME).is_file():
        raise BadInput(f"run {run_dir.name} already finished ({finished.data.get('status')}); "
                       "a finished run cannot be resumed", hint="start a new run")
    key = resume_key(events[0].data.get("exercise"), exercise_key)  # before anything runs
    if finished is not None:
        # drdrill died after journaling the verdict, before writing what derives from it
        JournalWriter(journal_path).close()  # cuts a torn tail, if any
        return _signed(write_outputs(run_dir, events, journal_last_hash(journal_path)), key)
    meta = dict(events[0].data)
    if meta.get("isolated"):  # resuming it as a plain run would act on production
        raise BadInput(f"run {run_dir.name} is an isolated run (--isolated); it cannot be "
                       "resumed: its clone was left in an unknown state",
                       hint="remove the clone (the lab: drdrill lab repair; elsewhere the "
                            "runbook's isolation teardown) and start a new --isolated run")
    mode = str(meta.get("mode", "drill"))
    runbook, inventory = _inputs(run_dir, meta)
    state, in_flight = rebuild_state(events, runbook, mode)
    operator = str(meta.get("operator") or getpass.getuser())
    decisions = _decide_all(in_flight, assume, interaction)
    if interaction is None:
        check_auto_answer(runbook, inventory)
        if not yes and any(s.kind.value == "manual" or s.gate for s in runbook.steps
                           if s.index not in state.done):
            raise BadInput("manual steps or gates remain and no one can answer them",
                           hint="resume in a terminal, or pass --yes")
        interaction = AutoAnswer(operator)
    extra = dict(meta.get("extra_vars") or {})
    extra_vars, secret_vars = secret_split(runbook, {**runbook.vars, **extra})
    missing = sorted(set(meta.get("secrets_supplied") or []) - set(secret_vars))
    if missing:
        names = ", ".join(f"DRDRILL_SECRET_{m.upper()}" for m in missing)
        raise BadInput(f"the run was given secrets that are not journaled: {', '.join(missing)}",
                       hint=f"set {names} in the environment and resume again")
    wall_origin = _wall_ts(events[0].wall) - events[0].mono
    clock = Clock(mono_origin=time.monotonic() - (time.time() - wall_origin),
                  wall_origin=wall_origin)
    with environment_lock(runbook, inventory, run_dir.name, operator):
        # "it took effect": let a still-running orphan finish its step (bounded by the
        # step's timeout) instead of cutting it off before its side effect
        grace = max([(f.step.timeout_s or 60.0) for f, d in zip(in_flight, decisions,
                                                                  strict=True)
                     if d == "done"], default=0.0)
        orphans = end_orphans(run_dir, wait_s=grace)
        scrub_secrets(run_dir, secret_vars)
        ctx, journal = open_context(
            ContextInputs(runbook, inventory, mode, run_dir, operator, interaction,
                          executor or default_executor(), extra_vars, secret_vars),
            clock, handlers, cancel, hard_stop)
        ctx.events.extend(events)
        # probe attempts are journaled at their start: the last line is not the latest instant
        gap_start = max(e.mono for e in events)
        first = in_flight[0] if in_flight else None
        ctx.emit("resumed", {"gap_start_mono": gap_start, "gap_end_mono": clock.now(),
                             "in_flight": first.step.name if first else None,
                             "in_flight_phase": first.phase if first else None,
                             "decision": decisions[0] if decisions else None,
                             # a crash inside a parallel group: every member in flight
                             "in_flight_steps": [f.step.name for f in in_flight],
                             "decisions": dict(zip([f.step.name for f in in_flight],
                                                   decisions, strict=True)),
                             "by": operator, "orphans_ended": orphans})
        for flight, decision in zip(in_flight, decisions, strict=True):
            if decision == "done":
                _assume_done(ctx, flight, state)
            else:
                _keep_crashed_attempts(run_dir, flight)
        _restore_marks(ctx, state)
        result = drive(ctx, journal, state)
    return _signed(result, key)


def _signed(result: RunResult, key: Ed25519PrivateKey | None) -> RunResult:
    """An exercise run's record.json was rewritten: sign it again (record.sig), as run does."""
    if key is not None:
        sign_run(result.run_dir, key)
    return result


def _decide_all(in_flight: Sequence[InFlight], assume: str | None,
                interaction: Interaction | None) -> list[str]:
    """One decision per step in flight; without --assume or a person to ask, a BadInput
    that names every non-idempotent one."""
    unsure = [f for f in in_flight if not f.step.idempotent]
    if len(unsure) > 1 and assume is None and interaction is None:
        names = ", ".join(repr(f.step.name) for f in unsure)
        raise BadInput(f"steps {names} of one parallel group were running when drdrill died "
                       "and are not idempotent: did they take effect?",
                       hint="pass --assume done (they took effect) or --assume redo (run "
                            "them again)")
    return [_decide(f, assume, interaction) for f in in_flight]


def _decide(in_flight: InFlight, assume: str | None, interaction: Interaction | None) -> str:
    if in_flight.step.idempotent:
        return "redo"
    if assume in ("done", "redo"):
        return assume
    if interaction is not None and hasattr(interaction, "ask_took_effect"):
        return "done" if interaction.ask_took_effect(in_flight.step) else "redo"
    which = "rollback step" if in_flight.phase == "rollback" else "step"
    raise BadInput(f"{which} {in_flight.step.name!r} was running when drdrill died and is not "
                   "idempotent: did it take effect?",
                   hint="pass --assume done (it took effect) or --assume redo (run it again)")


def _assume_done(ctx: RunContext, in_flight: InFlight, state: DrillState) -> None:
    step = in_flight.step
    ctx.emit("step_finished", {"index": step.index, "name": step.name, "kind": step.kind.value,
                               "phase": in_flight.phase, "status": "ok",
                               "attempt": in_flight.attempt, "error": None,
                               "assumed": "done (operator, on resume)"})
    if in_flight.phase == "rollback":
        state.rollback_done.add(step.index)
        return
    state.done.add(step.index)
    if step.checkpoint:
        ctx.emit("checkpoint", {"name": step.checkpoint, "step": step.name, "assumed": True})
    if step.disaster and ctx.mode == "drill":
        ctx.emit("t0", {"source": "disaster_step", "step": step.name, "assumed": True})
        state.t0_seen = True


def end_orphans(run_dir: Path, wait_s: float = 0.0) -> list[int]:
    """A SIGKILLed drdrill leaves its ansible-playbook running (reparented to init), still
    acting on the hosts and writing into the step directory. Give it up to ``wait_s`` to
    finish, then end those trees before the run goes on, so a step is never running twice
    at once, and remove secret vars files the dead process could not delete. Returns the
    pids ended."""
    needle = f"{run_dir.resolve()}/"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and processes_mentioning("ansible", needle):
        time.sleep(0.2)
    ended: list[int] = []
    for pid in processes_mentioning("ansible", needle):
        if pid not in ended:
            ended.extend(kill_tree(pid))
    for leftover in run_dir.glob("*/*/attempt-*/.secret-vars.json"):
        leftover.unlink(missing_ok=True)
    from drdrill.executors.command import end_local_orphans  # command: steps' processes

    ended.extend(end_local_orphans(run_dir))
    return sorted(set(ended))


def scrub_secrets(run_dir: Path, secret_vars: dict[str, object]) -> None:
    """Artifacts of an attempt that died mid-step were never masked: mask them now."""
    from drdrill.executors.ansible import scrub_step_dir

    for step_dir in run_dir.glob("*/*/attempt-*"):
        scrub_step_dir(step_dir, secret_vars)


def _restore_marks(ctx: RunContext, state: DrillState) -> None:
    """A kill between a step's ``step_finished`` line and its ``checkpoint``/``t0`` lines
    loses those marks (and with T0, the RTO). Stamp them again at the original instant the
    step finished, flagged ``restored``."""
    steps = {s.index: s for s in ctx.runbook.steps_for(ctx.mode)}
    marked = {e.data.get("name") for e in ctx.events if e.type == "checkpoint"}
    for event in list(ctx.events):
        data = event.data
        if (event.type != "step_finished" or data.get("phase", "main") != "main"
                or data.get("status") != "ok"):
            continue
        step = steps.get(int(data.get("index", 0)))
        if step is None:
            continue
        if step.checkpoint and step.checkpoint not in marked:
            ctx.bus.emit("checkpoint", {"name": step.checkpoint, "step": step.name,
                                        "restored": True}, at=event.mono)
            marked.add(step.checkpoint)
        if step.disaster and ctx.mode == "drill" and not state.t0_seen:
            ctx.bus.emit("t0", {"source": "disaster_step", "step": step.name,
                                "restored": True}, at=event.mono)
            state.t0_seen = True


def _keep_crashed_attempts(run_dir: Path, in_flight: InFlight) -> None:
    """The re-run counts its attempts from 1 again: move the dead run's attempt directories
    aside (``crashed-<k>-attempt-<n>``) so their artifacts are kept, not overwritten."""
    step = in_flight.step
    phase_dir = "rollback" if in_flight.phase == "rollback" else "steps"
    base = run_dir / phase_dir / f"{step.index}-{step.slug}"
    attempts = sorted(base.glob("attempt-*")) if base.is_dir() else []
    k = 1 + sum(1 for _ in base.glob("crashed-*")) if attempts else 0
    for attempt in attempts:
        attempt.rename(base / f"crashed-{k}-{attempt.name}")
