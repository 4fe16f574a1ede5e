"""Probe and canary interfaces and their registries (pluggable by ``type``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drdrill.runbook.model import CanarySpec, ProbeSpec


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str = ""


class Probe(Protocol):
    """A check from the outside. ``check`` must return within the spec's timeout and never
    raise for a failed check (a failure is a result, not an exception)."""

    def check(self) -> ProbeResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CanaryWrite:
    """Outcome of one marker write. ``acked`` is True only when the store acknowledged it."""

    seq: int
    acked: bool
    detail: str = ""


class Canary(Protocol):
    """A sequence-numbered writer through the service endpoint.

    ``write(seq, client_ts)`` stores marker ``seq`` (``client_ts`` is the UTC epoch the client
    sent it, stored beside it) and reports whether it was acknowledged (it never raises: a
    failed write is a result). ``read_back()`` returns every seq that exists in the store
    after recovery and RAISES when the store cannot be read (an unreadable store must never
    look like "everything was lost").
    """

    def setup(self) -> None: ...

    def write(self, seq: int, client_ts: float) -> CanaryWrite: ...

    def read_back(self) -> set[int]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may need beyond its spec, given by the engine (no globals): the run
    directory (command probes run there, with DRDRILL_RUN_DIR/DRDRILL_RUN_ID set), the
    inventory (ssh probes name inventory hosts) and a shared pool of warm connections."""

    run_dir: Path | None = None
    run_id: str = ""
    inventory: Any = None
    ssh_pool: Any = None

    def env(self) -> dict[str, str]:
        extra = {"DRDRILL_RUN_ID": self.run_id} if self.run_id else {}
        if self.run_dir is not None:
            extra["DRDRILL_RUN_DIR"] = str(self.run_dir.resolve())
        return {**os.environ, **extra}


NO_CONTEXT = ProbeContext()
ProbeFactory = Callable[[ProbeSpec, ProbeContext], Probe]
CanaryFactory = Callable[[CanarySpec, ProbeContext], Canary]

_PROBES: dict[str, ProbeFactory] = {}
_CANARIES: dict[str, CanaryFactory] = {}


def register_probe(type_: str, factory: ProbeFactory) -> None:
    _PROBES[type_] = factory


def register_canary(type_: str, factory: CanaryFactory) -> None:
    _CANARIES[type_] = factory


def probe_types() -> list[str]:
    return sorted(_PROBES)


def canary_types() -> list[str]:
    return sorted(_CANARIES)


def make_probe(spec: ProbeSpec, context: ProbeContext = NO_CONTEXT) -> Probe:
    from drdrill.probes import load_builtin

    load_builtin()
    try:
        factory = _PROBES[spec.type]
    except KeyError:
        from drdrill.errors import BadInput

        raise BadInput(
            f"unknown probe type {spec.type!r}; known: {', '.join(probe_types())}") from None
    return factory(spec, context)


def make_canary(spec: CanarySpec, context: ProbeContext = NO_CONTEXT) -> Canary:
    from drdrill.probes import load_builtin

    load_builtin()
    try:
        factory = _CANARIES[spec.type]
    except KeyError:
        from drdrill.errors import BadInput

        raise BadInput(
            f"unknown canary type {spec.type!r}; known: {', '.join(canary_types())}") from None
    return factory(spec, context)
