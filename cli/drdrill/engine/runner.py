"""``run_drill``: one execution of a runbook, from Python, no click or rich involved.

The run's outcome lives in its journal; the status and exit code are derived from it.
Rollback sits in ``finally`` paths so it runs after a failure policy or Ctrl-C alike.
"""

from __future__ import annotations

import getpass
import os
import secrets
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill import __version__
from drdrill.engine.connections import open_warm_connections
from drdrill.engine.context import AutoAnswer, Interaction, RunContext
from drdrill.engine.incident import check_from_step, journal_done_outside
from drdrill.engine.lock import environment_lock
from drdrill.engine.loop import DrillState, declare_t0, execute
from drdrill.engine.redact import make_redactor
from drdrill.engine.safety import check_auto_answer, check_can_run
from drdrill.engine.snapshot import snapshot_inputs
from drdrill.errors import ERROR_FILE, EXIT_ABORTED, EXIT_BUG, EXIT_MISSED, EXIT_OK, BadInput
from drdrill.events import Clock, Event, EventBus, EventHandler
from drdrill.executors.base import Executor
from drdrill.executors.inventory import Inventory, load_inventory
from drdrill.exercise.runlink import ExerciseRun, prepare_exercise
from drdrill.exercise.signing import sign_run
from drdrill.journal.record import build_record, write_record
from drdrill.journal.store import JOURNAL_NAME, JournalWriter
from drdrill.journal.verify import write_artifact_sums
from drdrill.notify.deliver import Notifier
from drdrill.report import write_reports
from drdrill.runbook.loader import load_runbook
from drdrill.runbook.model import MODES, Runbook, StepKind


@dataclass(frozen=True)
class RunOptions:
    runbook: Path
    inventory: Path
    mode: str = "drill"
    declared_at: datetime | None = None
    extra_vars: Mapping[str, str] = field(default_factory=dict)
    yes: bool = False
    confirm: str | None = None
    operator: str | None = None
    runs_dir: Path = Path("runs")
    from_step: str | None = None  # incident: join half-way, earlier steps done by hand
    exercise: Path | None = None  # joint exercise manifest: stamp, shared T0, sign
    participant: str | None = None
    exercise_key: Path | None = None  # else $DRDRILL_EXERCISE_KEY
    isolated: bool = False  # drill the recovery on a clone (engine/isolation.py)
    prestage: bool = True  # start playbook steps ahead, held until due (engine/prestage.py)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    exit_code: int
    record: dict[str, Any]


class _Collector:
    """Keeps the run's events in memory for deriving the verdict at the end."""

    def __init__(self, sink: list[Event]) -> None:
        self.sink = sink

    def handle(self, event: Event) -> None:
        self.sink.append(event)


def default_runs_dir() -> Path:
    return Path(os.environ.get("DRDRILL_RUNS_DIR", "runs"))


def new_run_id(runbook: Runbook) -> str:
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook.name}-{secrets.token_hex(3)}"


def secret_split(runbook: Runbook, merged: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    secret_values: dict[str, Any] = {}
    for name in runbook.secrets:
        from_env = os.environ.get(f"DRDRILL_SECRET_{name.upper()}")
        if from_env is not None:
            secret_values[name] = from_env
        elif name in merged:
            secret_values[name] = merged[name]
        merged.pop(name, None)
    return merged, secret_values


def default_executor() -> Executor:
    from drdrill.executors.ansible import AnsibleExecutor

    return AnsibleExecutor()


def prepare_inputs(options: RunOptions) -> tuple[Runbook, Inventory]:
    if options.mode not in MODES:
        raise BadInput(f"unknown mode {options.mode!r}; use drill or incident")
    if options.declared_at is not None and options.mode != "incident":
        raise BadInput("--declared-at is for --mode incident only")
    inventory = load_inventory(options.inventory)
    runbook = load_runbook(options.runbook, inventory, extra_vars=options.extra_vars,
                           strict=True, isolated=options.isolated)
    check_from_step(runbook, options.mode, options.from_step)
    if options.isolated:
        from drdrill.engine.isolation import check_isolated, isolated_runbook

        check_isolated(runbook, options.mode, options.from_step, options.exercise)
        runbook = isolated_runbook(runbook)
    return runbook, inventory


def prepare_exercise_run(options: RunOptions, runbook: Runbook) -> ExerciseRun | None:
    if options.exercise is None:
        if options.participant is not None:
            raise BadInput("--participant is for --exercise runs only")
        return None
    return prepare_exercise(options.exercise, options.participant, options.exercise_key,
                            runbook)


def run_drill(options: RunOptions, handlers: Sequence[EventHandler] = (),
              interaction: Interaction | None = None, executor: Executor | None = None,
              cancel: threading.Event | None = None,
              hard_stop: threading.Event | None = None) -> RunResult:
    """Run a drill end to end and return its derived result. Raises BadInput (nothing
    executed) or Aborted (safety gate) before anything runs; after that, every outcome is
    recorded in the journal and returned, never raised."""
    runbook, inventory = prepare_inputs(options)
    exercise = prepare_exercise_run(options, runbook)
    operator = options.operator or getpass.getuser()
    needs_person = any(s.kind is StepKind.MANUAL or s.gate for s in runbook.steps)
    check_can_run(runbook, inventory, options.confirm, options.yes)
    if interaction is None:
        check_auto_answer(runbook, inventory)
        if needs_person and not options.yes:
            raise BadInput("this runbook has manual steps or gates and no one to answer them",
                           hint="run it in a terminal, or pass --yes (never in production)")
        interaction = AutoAnswer(operator)
    executor = executor or default_executor()
    merged = {**runbook.vars, **options.extra_vars}
    extra_vars, secret_vars = secret_split(runbook, merged)

    if options.mode == "drill":  # nothing runs, no run dir: exit 2
        check_service_up(_production(options, inventory) if options.isolated else runbook,
                         inventory)
    run_id = new_run_id(runbook)
    run_dir = options.runs_dir / run_id
    with environment_lock(runbook, inventory, run_id, operator):
        run_dir.mkdir(parents=True, mode=0o700)
        snapshot = snapshot_inputs(runbook, inventory, run_dir)
        ctx, journal = open_context(
            ContextInputs(runbook, inventory, options.mode, run_dir, operator, interaction,
                          executor, extra_vars, secret_vars, isolated=options.isolated),
            Clock(), handlers, cancel, hard_stop)
        ctx.prestager.enabled = options.prestage
        _emit_started(ctx, options, run_id, extra_vars, exercise)
        ctx.emit("inputs_snapshot", snapshot.event_data())  # inputs under the chain
        state = DrillState()
        shared_t0 = exercise.declared_t0 if exercise else None
        if options.mode == "incident":
            declare_t0(ctx, options.declared_at or shared_t0)
            state.t0_seen = True
            if options.from_step is not None:
                journal_done_outside(ctx, options.from_step, state.done)
        elif shared_t0 is not None:  # the exercise's T0 comes first: the metrics use it
            declare_t0(ctx, shared_t0)
        result = drive(ctx, journal, state)
    if exercise is not None:
        sign_run(result.run_dir, exercise.key)
    return result


def _production(options: RunOptions, inventory: Inventory) -> Runbook:
    """An isolated drill also starts from a working production service (it clones the
    standby and reads the primary's position): checked with production's endpoints."""
    from drdrill.engine.isolation import production_runbook

    return production_runbook(options.runbook, inventory, options.extra_vars)


def check_service_up(runbook: Runbook, inventory: Inventory) -> None:
    """A drill starts from a working service: when no endpoint of its PostgreSQL service
    DSN accepts writes, nothing is executed and no run is created (it would pollute history
    with an 'aborted' run of no steps). The message names EACH endpoint and why."""
    from drdrill.engine.readiness import service_endpoint_problems

    problems = service_endpoint_problems(runbook, inventory)
    if problems:
        raise BadInput("the service is down at the start of the drill: "
                       + "; ".join(problems),
                       hint="bring it back first (the lab: drdrill lab status)")


@dataclass(frozen=True)
class ContextInputs:
    runbook: Runbook
    inventory: Inventory
    mode: str
    run_dir: Path
    operator: str
    interaction: Interaction
    executor: Executor
    extra_vars: Mapping[str, Any]
    secret_vars: Mapping[str, Any]
    isolated: bool = False


def open_context(inputs: ContextInputs, clock: Clock, handlers: Sequence[EventHandler],
                 cancel: threading.Event | None, hard_stop: threading.Event | None
                 ) -> tuple[RunContext, JournalWriter]:
    """The bus with the journal first (nothing is seen before it is durable), then the
    in-memory collector, then the caller's handlers (view, notifiers)."""
    run_dir = inputs.run_dir
    bus = EventBus(clock, redact=make_redactor(inputs.secret_vars))
    events: list[Event] = []
    journal = JournalWriter(run_dir / JOURNAL_NAME)
    bus.subscribe(journal, critical=True)
    bus.subscribe(_Collector(events), critical=True)
    for handler in handlers:
        bus.subscribe(handler)
    notifier = Notifier(inputs.runbook.notify, bus, inputs.secret_vars)
    bus.subscribe(notifier)  # last: it only enqueues; delivery runs on its own threads
    ctx = RunContext(runbook=inputs.runbook, inventory=inputs.inventory, mode=inputs.mode,
                     run_dir=run_dir, bus=bus, executor=inputs.executor,
                     interaction=inputs.interaction, operator=inputs.operator,
                     auto_answer=isinstance(inputs.interaction, AutoAnswer),
                     extra_vars={**inputs.extra_vars, "drdrill_run_id": run_dir.name,
                                 "drdrill_mode": inputs.mode,
                                 "drdrill_run_dir": str(run_dir.resolve())},
                     secret_vars=inputs.secret_vars, cancel=cancel or threading.Event(),
                     hard_stop=hard_stop or threading.Event(), events=events,
                     notifier=notifier, isolated=inputs.isolated)
    return ctx, journal


def drive(ctx: RunContext, journal: JournalWriter, state: DrillState) -> RunResult:
    """Run the loop, then close the journal and derive everything from it."""
    try:
        with open_warm_connections(ctx) as ready:
            status, reason = _loop(ctx, state) if ready is None else ("aborted", ready)
    except Exception as exc:  # recorded, never lost: the journal says what happened
        status, reason = "error", f"{type(exc).__name__}: {exc}"
        write_error_file(ctx.run_dir)
    ctx.emit("run_finished", {"status": status, "reason": reason})
    if ctx.notifier is not None:  # bounded grace, then the rest is journaled as given up
        ctx.notifier.close()
    journal.close()
    return write_outputs(ctx.run_dir, ctx.events, journal.last_hash)


def _loop(ctx: RunContext, state: DrillState) -> tuple[str, str | None]:
    if not ctx.isolated:
        return execute(ctx, state)
    from drdrill.engine.isolation import execute_isolated

    return execute_isolated(ctx, state, execute)


def write_error_file(run_dir: Path) -> Path:
    """drdrill's own bug: the traceback of the exception being handled goes to
    <run dir>/error.txt (exit 70), for a bug report; the journal keeps the one-line reason."""
    path = run_dir / ERROR_FILE
    path.write_text(traceback.format_exc())
    return path


def write_outputs(run_dir: Path, events: Sequence[Event], last_hash: str) -> RunResult:
    """Everything written after run_finished is derived from the journal: artifact sums,
    record.json, reports. Also used by resume when drdrill died after run_finished."""
    record = build_record(events, last_hash)
    write_artifact_sums(run_dir)
    write_record(run_dir, record)
    write_reports(run_dir)  # never raises: a report problem must not lose the record
    exit_code = {"passed": EXIT_OK, "failed": EXIT_MISSED,
                 "error": EXIT_BUG}.get(str(record["status"]), EXIT_ABORTED)
    return RunResult(run_dir.name, run_dir, str(record["status"]), exit_code, record)


def _emit_started(ctx: RunContext, options: RunOptions, run_id: str,
                  extra_vars: Mapping[str, Any], exercise: ExerciseRun | None = None) -> None:
    runbook = ctx.runbook
    plan = [{"index": s.index, "name": s.name, "kind": s.kind.value,
             "hosts": list(ctx.hosts_for(s)), "timeout_s": s.timeout_s,
             "disaster": s.disaster, "checkpoint": s.checkpoint, "group": s.group}
            for s in runbook.steps_for(ctx.mode)]
    ctx.emit("run_started", {
        "run_id": run_id,
        "runbook": {"name": runbook.name, "path": str(runbook.path), "sha256": runbook.sha256},
        "mode": ctx.mode, "operator": ctx.operator,
        "inventory": {"path": str(ctx.inventory.path), "sha256": ctx.inventory.sha256},
        "objectives": {"rto_s": runbook.objectives.rto_s, "rpo_s": runbook.objectives.rpo_s},
        "drdrill_version": __version__, "environment": runbook.environment,
        "declared_at": options.declared_at.isoformat() if options.declared_at else None,
        "from_step": options.from_step,
        "exercise": exercise.stamp() if exercise else None,
        "service_interval_s": runbook.service.interval_s if runbook.service else None,
        "canary_interval_s": runbook.canary.interval_s if runbook.canary else None,
        "description": runbook.description, "owner": runbook.owner,
        "plan": plan,
        "isolated": _isolation_stamp(ctx),
        "prestage": options.prestage,  # engine/prestage.py; off: drdrill run --no-prestage
        "extra_vars": {k: v for k, v in extra_vars.items() if k in options.extra_vars},
        # names only, never values: resume must ask for the same secrets again
        "secrets_supplied": sorted(ctx.secret_vars),
        "inputs": {"runbook": f"runbook/{runbook.path.name}",
                   "inventory": f"runbook/inventory{ctx.inventory.path.suffix}"},
    })


def _isolation_stamp(ctx: RunContext) -> dict[str, Any] | None:
    if not ctx.isolated:
        return None
    from drdrill.engine.isolation import stamp

    return stamp(ctx.runbook)
