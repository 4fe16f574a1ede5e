"""The one typed definition of the journal's event types and their payloads.

``EventType`` names every type a run may journal; ``PAYLOADS`` maps each to the TypedDict of
its ``data`` (``total=False``: older journals lack newer keys, and readers must cope).
docs/journal.md documents exactly these types and fields — tests/unit/test_event_types.py
checks it, and that every ``emit("...")`` in the package uses a type named here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict


class EventType(StrEnum):
    RUN_STARTED = "run_started"
    PREFLIGHT = "preflight"
    PREFLIGHT_IGNORED = "preflight_ignored"
    INPUTS_SNAPSHOT = "inputs_snapshot"
    CONNECTIONS = "connections"
    STEP_STARTED = "step_started"
    STEP_CONNECTIONS = "step_connections"
    STEP_PREPARED = "step_prepared"
    STEP_RELEASED = "step_released"
    STEP_DISCARDED = "step_discarded"
    TASK = "task"
    FACT = "fact"
    COMMAND = "command"
    STEP_RETRY = "step_retry"
    STEP_FINISHED = "step_finished"
    STEP_DONE_OUTSIDE = "step_done_outside"
    CHECKPOINT = "checkpoint"
    T0 = "t0"
    RECOVERY_STARTED = "recovery_started"
    PROBE = "probe"
    CANARY_READY = "canary_ready"
    CANARY_WRITE = "canary_write"
    CANARY_READBACK = "canary_readback"
    BACKGROUND_ERROR = "background_error"
    HANDLER_ERROR = "handler_error"
    GATE_WAITING = "gate_waiting"
    GATE = "gate"
    MANUAL_OVERDUE = "manual_overdue"
    NOTIFY_MESSAGE = "notify_message"
    NOTIFY_SENT = "notify_sent"
    NOTIFY_FAILED = "notify_failed"
    NOTIFY_GAVE_UP = "notify_gave_up"
    INCIDENT_HANDOFF = "incident_handoff"
    ROLLBACK_SKIPPED = "rollback_skipped"
    ROLLBACK_DECISION = "rollback_decision"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_FINISHED = "rollback_finished"
    RUN_FINISHED = "run_finished"
    RESUMED = "resumed"
    ISOLATION_STARTED = "isolation_started"
    ISOLATION_FINISHED = "isolation_finished"


class RunStarted(TypedDict, total=False):
    run_id: str
    runbook: dict[str, Any]
    mode: str
    operator: str
    inventory: dict[str, Any]
    objectives: dict[str, float]
    drdrill_version: str
    environment: str | None
    declared_at: str | None
    service_interval_s: float | None
    canary_interval_s: float | None
    plan: list[dict[str, Any]]
    isolated: dict[str, Any] | None
    prestage: bool


class Preflight(TypedDict, total=False):
    host: str
    check: str
    ok: bool
    detail: str
    duration_s: float
    warning: bool


class PreflightIgnored(TypedDict, total=False):
    reason: str
    failed: list[str]


class InputsSnapshot(TypedDict, total=False):
    dir: str
    files: dict[str, str]
    digest: str
    bytes: int
    skipped: list[str]


class Connections(TypedDict, total=False):
    first_connect_s: dict[str, list[float]]
    ansible_warm_up_s: float | None


class StepStarted(TypedDict, total=False):
    index: int
    name: str
    kind: str
    hosts: list[str]
    attempt: int
    phase: str
    group: str


class StepConnections(TypedDict, total=False):
    index: int
    step: str
    hosts: dict[str, dict[str, Any]]


class StepPrepared(TypedDict, total=False):
    index: int
    name: str
    attempt: int
    pid: int
    ready_s: float
    loaded_s: float


class StepReleased(TypedDict, total=False):
    index: int
    name: str
    phase: str
    attempt: int
    ready: bool
    waited_ready_s: float


class StepDiscarded(TypedDict, total=False):
    index: int
    name: str
    phase: str
    reason: str


class Task(TypedDict, total=False):
    index: int
    step: str
    task: str
    host: str | None
    event: str
    duration_s: float
    changed: bool
    msg: str


class Command(TypedDict, total=False):
    index: int
    step: str
    host: str
    argv: list[str]
    status: str
    rc: int | None
    duration_s: float
    stdout: str
    stderr: str
    killed: list[int]


class Fact(TypedDict, total=False):
    name: str
    step: str
    index: int
    task: str
    host: str | None
    value: str


class StepRetry(TypedDict, total=False):
    index: int
    name: str
    kind: str
    phase: str
    attempt: int
    error: str | None


class StepFinished(TypedDict, total=False):
    index: int
    name: str
    kind: str
    phase: str
    status: str
    attempt: int
    error: str | None
    duration_s: float
    manual: dict[str, Any]
    assumed: bool
    group: str


class StepDoneOutside(TypedDict, total=False):
    index: int
    name: str
    by: str
    from_step: str


class Checkpoint(TypedDict, total=False):
    name: str
    step: str | None
    task: str
    host: str | None
    t0: bool
    assumed: bool
    restored: bool


class T0(TypedDict, total=False):
    source: str
    step: str | None
    assumed: bool
    restored: bool


class RecoveryStarted(TypedDict, total=False):
    index: int
    name: str


class Probe(TypedDict, total=False):
    ok: bool
    detail: str
    started_mono: float
    duration_s: float
    latency_s: float


class CanaryReady(TypedDict, total=False):
    pass


class CanaryWrite(TypedDict, total=False):
    seq: int
    acked: bool
    sent_mono: float
    duration_s: float
    detail: str


class CanaryReadback(TypedDict, total=False):
    ok: bool
    present: list[int]
    detail: str


class BackgroundError(TypedDict, total=False):
    thread: str
    error: str


class HandlerError(TypedDict, total=False):
    handler: str
    error: str
    event_type: str


class GateWaiting(TypedDict, total=False):
    index: int
    name: str
    what: str
    phase: str
    owner: str | None
    expected_s: float | None
    timeout_s: float | None
    instruction: str


class Gate(TypedDict, total=False):
    index: int
    name: str
    answer: str
    by: str


class ManualOverdue(TypedDict, total=False):
    index: int
    name: str
    waited_s: float
    on_failure: str


class NotifyMessage(TypedDict, total=False):
    index: int
    name: str
    message: str
    targets: list[str]
    delivery: str


class NotifySent(TypedDict, total=False):
    target: str
    event: str
    delivery: str
    attempt: int
    status_code: int
    duration_s: float


class NotifyFailed(TypedDict, total=False):
    target: str
    event: str
    delivery: str
    attempt: int
    error: str
    duration_s: float
    retry_in_s: float | None


class NotifyGaveUp(TypedDict, total=False):
    target: str
    event: str
    delivery: str
    attempts: int
    reason: str


class IncidentHandoff(TypedDict, total=False):
    index: int
    failed_step: str
    status: str
    error: str | None
    last_completed: str | None
    continue_command: str


class RollbackSkipped(TypedDict, total=False):
    reason: str


class RollbackDecision(TypedDict, total=False):
    answer: str
    by: str


class RollbackStarted(TypedDict, total=False):
    reason: str
    after_abort: bool


class RollbackFinished(TypedDict, total=False):
    status: str


class RunFinished(TypedDict, total=False):
    status: str
    reason: str | None


class Resumed(TypedDict, total=False):
    gap_start_mono: float
    gap_end_mono: float
    in_flight: str | None
    in_flight_phase: str | None
    decision: str | None
    in_flight_steps: list[str]
    decisions: dict[str, str]
    by: str
    orphans_ended: list[int]


class IsolationStarted(TypedDict, total=False):
    steps: list[str]


class IsolationFinished(TypedDict, total=False):
    teardown: str


PAYLOADS: dict[EventType, type] = {
    EventType.RUN_STARTED: RunStarted, EventType.PREFLIGHT: Preflight,
    EventType.PREFLIGHT_IGNORED: PreflightIgnored, EventType.INPUTS_SNAPSHOT: InputsSnapshot,
    EventType.CONNECTIONS: Connections, EventType.STEP_STARTED: StepStarted,
    EventType.STEP_CONNECTIONS: StepConnections, EventType.TASK: Task,
    EventType.STEP_PREPARED: StepPrepared, EventType.STEP_RELEASED: StepReleased,
    EventType.STEP_DISCARDED: StepDiscarded,
    EventType.FACT: Fact, EventType.COMMAND: Command, EventType.STEP_RETRY: StepRetry,
    EventType.STEP_FINISHED: StepFinished, EventType.STEP_DONE_OUTSIDE: StepDoneOutside,
    EventType.CHECKPOINT: Checkpoint, EventType.T0: T0,
    EventType.RECOVERY_STARTED: RecoveryStarted, EventType.PROBE: Probe,
    EventType.CANARY_READY: CanaryReady, EventType.CANARY_WRITE: CanaryWrite,
    EventType.CANARY_READBACK: CanaryReadback, EventType.BACKGROUND_ERROR: BackgroundError,
    EventType.HANDLER_ERROR: HandlerError, EventType.GATE_WAITING: GateWaiting,
    EventType.GATE: Gate, EventType.MANUAL_OVERDUE: ManualOverdue,
    EventType.NOTIFY_MESSAGE: NotifyMessage, EventType.NOTIFY_SENT: NotifySent,
    EventType.NOTIFY_FAILED: NotifyFailed, EventType.NOTIFY_GAVE_UP: NotifyGaveUp,
    EventType.INCIDENT_HANDOFF: IncidentHandoff,
    EventType.ROLLBACK_SKIPPED: RollbackSkipped,
    EventType.ROLLBACK_DECISION: RollbackDecision,
    EventType.ROLLBACK_STARTED: RollbackStarted,
    EventType.ROLLBACK_FINISHED: RollbackFinished, EventType.RUN_FINISHED: RunFinished,
    EventType.RESUMED: Resumed,
    EventType.ISOLATION_STARTED: IsolationStarted,
    EventType.ISOLATION_FINISHED: IsolationFinished,
}


def payload_fields(type_: EventType) -> tuple[str, ...]:
    """The documented ``data`` keys of ``type_``."""
    return tuple(PAYLOADS[type_].__annotations__)
