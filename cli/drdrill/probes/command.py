"""``command`` probe and canary: a local program run as an argv list (never through a
shell), so a runbook can check or store anything without a database."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from drdrill.probes.base import (
    CanaryWrite,
    ProbeContext,
    ProbeResult,
    register_canary,
    register_probe,
)
from drdrill.runbook.model import CanarySpec, ProbeSpec


def _run(argv: Sequence[str], timeout: float, context: ProbeContext,
         extra_env: dict[str, str] | None = None) -> tuple[int | None, str]:
    env = {**context.env(), **(extra_env or {})}
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=context.run_dir, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g}s"
    except OSError as exc:
        return None, f"cannot run {argv[0]!r}: {exc.strerror}"
    return done.returncode, (done.stdout + done.stderr)


class CommandProbe:
    def __init__(self, spec: ProbeSpec, context: ProbeContext) -> None:
        self.context = context
        self.argv = [str(a) for a in spec.options["argv"]]
        self.expect_exit = int(spec.options.get("expect_exit", 0))
        pattern = spec.options.get("expect_output")
        self.expect_output = re.compile(str(pattern)) if pattern else None
        self.timeout_s = spec.timeout_s

    def check(self) -> ProbeResult:
        rc, output = _run(self.argv, self.timeout_s, self.context)
        if rc is None:
            return ProbeResult(False, output)
        if rc != self.expect_exit:
            return ProbeResult(False, f"exit {rc} (expected {self.expect_exit}): {output[-160:]}")
        if self.expect_output and not self.expect_output.search(output):
            return ProbeResult(False, f"output did not match {self.expect_output.pattern!r}")
        return ProbeResult(True, f"exit {rc}")

    def close(self) -> None:
        return None


class CommandCanary:
    """``write`` runs the write argv with DRDRILL_SEQ / DRDRILL_TS in its environment (exit 0
    = acknowledged); ``read`` prints the surviving seqs, one per line."""

    def __init__(self, spec: CanarySpec, context: ProbeContext) -> None:
        self.context = context
        self.write_argv = [str(a) for a in spec.options["write"]]
        self.read_argv = [str(a) for a in spec.options["read"]]
        self.setup_argv = [str(a) for a in spec.options.get("setup", [])]
        self.timeout_s = spec.timeout_s

    def setup(self) -> None:
        if self.setup_argv:
            rc, output = _run(self.setup_argv, self.timeout_s, self.context)
            if rc != 0:
                raise RuntimeError(f"canary setup failed: {output[-200:]}")

    def write(self, seq: int, client_ts: float) -> CanaryWrite:
        env = {"DRDRILL_SEQ": str(seq), "DRDRILL_TS": f"{client_ts:.6f}"}
        rc, output = _run(self.write_argv, self.timeout_s, self.context, env)
        return CanaryWrite(seq, rc == 0, "" if rc == 0 else output[-160:])

    def read_back(self) -> set[int]:
        rc, output = _run(self.read_argv, max(self.timeout_s, 10.0), self.context)
        if rc != 0:
            raise RuntimeError(f"canary read failed (exit {rc}): {output[-200:]}")
        return {int(tok) for tok in output.split() if tok.strip().lstrip("-").isdigit()}

    def close(self) -> None:
        return None


def register() -> None:
    register_probe("command", CommandProbe)
    register_canary("command", CommandCanary)
