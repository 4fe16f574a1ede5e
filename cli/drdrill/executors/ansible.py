"""Playbook steps through ansible-runner, with its unsafe defaults overridden.

What ansible-runner gets wrong for a DR tool (measured, see FIELD-NOTES) and what we do:
- host-key checking off by default      -> ANSIBLE_HOST_KEY_CHECKING=True, always
- cancel/timeout leaves ansible workers -> our cancel_callback ends the whole /proc tree
- its own SIGINT/SIGTERM handlers        -> we always pass cancel_callback (it then installs none)
- timeouts checked every 5 s             -> pexpect_timeout 0.2 s
- stale env/extravars in a reused dir   -> a fresh private_data_dir per attempt
- environment copied into artifacts/*/command, extravars on the command line
                                         -> vars go in a 0600 file (secrets in a separate one,
                                            deleted after the step); the env is scrubbed from
                                            the artifact afterwards.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner

from drdrill.engine.redact import MASK, secret_strings
from drdrill.executors.base import StepRequest
from drdrill.executors.inventory import Inventory
from drdrill.executors.proctree import cmdline, descendants, kill_tree

if TYPE_CHECKING:
    from drdrill.executors.prestage import PlaybookAttempt

PEXPECT_TIMEOUT_S = 0.2
TASK_CHECKPOINT = re.compile(r"\[checkpoint ([A-Za-z0-9][A-Za-z0-9_.-]*)\]\s*$")
TASK_FACT = re.compile(r"\[fact ([A-Za-z0-9][A-Za-z0-9_.-]*)\]\s*$")
T0_TASK = re.compile(r"\[t0\]")  # the fault task: its end is a T0 candidate
T0_CHECKPOINT = "t0_task"
RUNNER_SETTINGS = {"pexpect_timeout": PEXPECT_TIMEOUT_S, "suppress_ansible_output": True}
_RESULT_EVENTS = {
    "runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped",
}


def safe_env(request: StepRequest) -> dict[str, str]:
    env = _base_env(request.step_dir)
    env.update(request.env)
    return env


def _base_env(work_dir: Path) -> dict[str, str]:
    return {
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_HOME": str(work_dir / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(work_dir / ".ansible" / "tmp"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        # ansible-playbook from the same environment as drdrill, even when not activated
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    }


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dict(data), fh)


@dataclass
class _Attempt:
    request: StepRequest
    deadline: float | None
    timed_out: bool = False
    cancelled: bool = False
    stamped: set[str] = field(default_factory=set)
    first_task_s: dict[str, float] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    failure: str | None = None  # the first failing task's own reason (not ignore_errors)
    # pre-staging (executors/prestage.py): a parallel member's own flag replaces the
    # request's at the release; a discarded attempt is cancelled; ``hold`` keeps task
    # events back until step_started is journaled (the release)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    discarded: bool = False
    hold: threading.Event | None = None

    def __post_init__(self) -> None:
        self.secrets = secret_strings(self.request.secret_vars)
        self.cancel_event = self.request.cancel

    def cancel_callback(self) -> bool:
        expired = self.deadline is not None and time.monotonic() >= self.deadline
        stopped = self.cancel_event.is_set() or self.discarded
        if expired or stopped:
            self.timed_out = expired and not stopped
            self.cancelled = not self.timed_out
            _end_ansible_processes(str(self.request.step_dir / "extravars.json"))
            return True
        return False

    def event_handler(self, event: dict[str, Any]) -> bool:
        # ansible-runner writes this very dict to job_events/ after we return: mask secret
        # values in place first (a task without no_log may echo them)
        _mask_in_place(event, self.secrets)
        name = event.get("event", "")
        data = event.get("event_data", {})
        if self.hold is not None and (name == "playbook_on_task_start"
                                      or name in _RESULT_EVENTS):
            self.hold.wait()  # the first task's start event is sent just before the hold
        host = data.get("host")
        if name in _RESULT_EVENTS and host and str(host) not in self.first_task_s:
            self.first_task_s[str(host)] = float(data.get("duration") or 0.0)
        if name == "playbook_on_task_start" or name in _RESULT_EVENTS:
            payload: dict[str, Any] = {
                "index": self.request.step.index, "step": self.request.step.name,
                "task": data.get("task", ""), "host": data.get("host"), "event": name,
            }
            if "duration" in data:
                payload["duration_s"] = data["duration"]
            if name in _RESULT_EVENTS:
                # what the task changed on the host (the playbooks' changed_when tell the
                # truth); a skipped task's event carries no result: it changed nothing
                res = data.get("res")
                payload["changed"] = isinstance(res, dict) and bool(res.get("changed", False))
            if name == "runner_on_failed" or name == "runner_on_unreachable":
                payload["msg"] = _short_msg(data.get("res", {}))
                self._note_failure(name, data, payload["msg"])
            self.request.emit("task", payload)
        if name == "runner_on_ok":
            self._task_checkpoint(str(data.get("task", "")), data)
            self._task_fact(str(data.get("task", "")), data)
        return True

    def _task_fact(self, task: str, data: dict[str, Any]) -> None:
        """A task named "... [fact NAME]" reports a value measured on the host (its ``msg``,
        else its ``stdout``) as a ``fact`` event: e.g. the standby's last replayed commit
        timestamp read just before promotion (the incident RPO bound)."""
        match = TASK_FACT.search(task)
        res = data.get("res")
        if match is None or not isinstance(res, dict) or res.get("_ansible_no_log"):
            return
        value = res.get("msg") or res.get("stdout") or ""
        self.request.emit("fact", {"name": match.group(1), "step": self.request.step.name,
                                   "index": self.request.step.index, "task": task,
                                   "host": data.get("host"), "value": str(value)[:500]})

    def _note_failure(self, name: str, data: dict[str, Any], msg: str) -> None:
        """Keep the first real failure's reason: a step's error must say why, not only
        'playbook failed (rc=2)'. Failures under ignore_errors do not fail the step."""
        if self.failure is not None or data.get("ignore_errors"):
            return
        what = "unreachable" if name == "runner_on_unreachable" else "failed"
        self.failure = (f"task {str(data.get('task', '')).strip()!r} {what} on "
                        f"{data.get('host')}: {msg or 'no message'}")

    def _task_checkpoint(self, task: str, data: dict[str, Any]) -> None:
        """A task named "... [checkpoint NAME]" stamps NAME at the task's own end (Ansible's
        timestamp), not at the end of the step: e.g. the instant a restore point is made.
        A task marked "[t0]" (the fault itself) stamps ``t0_task`` the same way."""
        match = TASK_CHECKPOINT.search(task)
        names = [match.group(1)] if match is not None else []
        if T0_TASK.search(task):
            names.append(T0_CHECKPOINT)
        at_wall = _task_end(data)
        for name in names:
            if name in self.stamped:
                continue
            self.stamped.add(name)
            payload = {"name": name, "step": self.request.step.name, "task": task,
                       "host": data.get("host")}
            if name == T0_CHECKPOINT:
                payload["t0"] = True  # measure/metrics.py: T0 = earliest of its candidates
            self.request.emit("checkpoint", payload, at_wall=at_wall)


def _task_end(data: dict[str, Any]) -> float | None:
    """The task's end as a UTC epoch, from Ansible's own ``end`` timestamp."""
    end = data.get("end")
    if isinstance(end, str):
        try:
            return datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _warm_hosts(request: StepRequest) -> dict[str, bool]:
    """For each remote host of the step: does a ControlPersist socket already exist (the
    step will not pay an SSH handshake)? Needs ANSIBLE_SSH_CONTROL_PATH set by the engine
    as <dir>/%%h-%%p-%%r; without it nothing is reported."""
    pattern = request.env.get("ANSIBLE_SSH_CONTROL_PATH", "")
    if not pattern.endswith("/%%h-%%p-%%r"):
        return {}
    directory = Path(pattern).parent
    warm: dict[str, bool] = {}
    for host in request.hosts:
        host_vars = request.inventory.vars_of(host)
        if host_vars.get("ansible_connection", "ssh") in ("local", "ansible.builtin.local"):
            continue
        address = host_vars.get("ansible_host", host)
        port = host_vars.get("ansible_port", 22)
        user = host_vars.get("ansible_user") or getpass.getuser()
        warm[host] = (directory / f"{address}-{port}-{user}").exists()
    return warm


def _journal_connections(request: StepRequest, warm: dict[str, bool],
                         first_task_s: dict[str, float]) -> None:
    """How each remote host's first contact in this step went: warm (an open ControlPersist
    connection) or cold (a new SSH handshake), and its first task's duration."""
    if not warm:
        return
    request.emit("step_connections", {
        "index": request.step.index, "step": request.step.name,
        "hosts": {h: {"warm": w, "first_task_s": first_task_s.get(h)} for h, w in warm.items()}})


def _short_msg(res: Any) -> str:
    if not isinstance(res, dict):
        return ""
    if res.get("_ansible_no_log"):
        return "(output hidden by no_log)"
    msg = res.get("msg") or res.get("stderr") or ""
    stderr = str(res.get("stderr") or "").strip()
    if stderr and msg == "non-zero return code":  # Ansible's generic msg: say what failed
        msg = f"{msg}: {stderr.splitlines()[0]}"
    return str(msg)[:300]


def _end_ansible_processes(marker: str) -> None:
    """End this attempt's ansible-playbook (and, first, everything under it): the one whose
    command line names ``marker``, the attempt's own vars file — never the playbook of a
    parallel group's sibling, which runs under the same drdrill process."""
    for pid in descendants(os.getpid()):
        line = cmdline(pid)
        if "ansible-playbook" in line and marker in line:
            kill_tree(pid)


def scrub_step_dir(step_dir: Path, secret_vars: Mapping[str, Any]) -> None:
    """Mask secrets and drop the environment in a step directory's artifacts (used after
    every attempt, and by resume for attempts whose orchestrator died)."""
    _scrub_artifacts(step_dir, secret_strings(secret_vars))


def _mask_in_place(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        for key in list(value):
            value[key] = _mask_in_place(value[key], secrets)
    elif isinstance(value, list):
        value[:] = [_mask_in_place(v, secrets) for v in value]
    return value


def _scrub_artifacts(step_dir: Path, secrets: list[str] | None = None) -> None:
    """ansible-runner stores the full environment in artifacts/*/command: drop it. And mask
    secret values (as written, and as JSON-escaped) in every artifact file: ansible's stdout
    of a task without no_log carries them."""
    for command_file in step_dir.glob("artifacts/*/command"):
        try:
            data = json.loads(command_file.read_text())
            data.pop("env", None)
            command_file.write_text(json.dumps(data))
        except (OSError, ValueError):
            command_file.unlink(missing_ok=True)
    forms = {f.encode() for s in secrets or [] for f in (s, json.dumps(s)[1:-1]) if f}
    if not forms:
        return
    ordered = sorted(forms, key=len, reverse=True)
    for path in step_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        masked = data
        for form in ordered:
            masked = masked.replace(form, MASK.encode())
        if masked != data:
            path.write_bytes(masked)


class AnsibleExecutor:
    """Runs playbook steps one attempt at a time (one runner and directory per attempt)."""

    def prepare(self, request: StepRequest) -> PlaybookAttempt:
        """Lay out the attempt; with ``request.prestage``, start ansible-playbook now,
        held before its first task until the release (executors/prestage.py)."""
        from drdrill.executors.prestage import PlaybookAttempt

        # ansible-playbook runs with its own cwd: a relative run dir (the default ./runs)
        # would make ``-e @extravars.json`` and ANSIBLE_HOME point nowhere.
        return PlaybookAttempt(dataclasses.replace(request,
                                                   step_dir=request.step_dir.resolve()))


def warm_up(inventory: Inventory, hosts: Sequence[str], env: Mapping[str, str],
            work_dir: Path, timeout_s: float = 60.0) -> float | None:
    """Open Ansible's ControlPersist connections to the remote hosts before the drill, so
    the steps between T0 and service restored reuse them instead of paying handshakes.
    Returns the seconds it took, or None when no host is remote or it did not succeed."""
    remote = [h for h in hosts if inventory.vars_of(h).get("ansible_connection") != "local"]
    if not remote:
        return None
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "env").mkdir(exist_ok=True)
    _write_private(work_dir / "env" / "settings", RUNNER_SETTINGS)
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()

    def cancel() -> bool:
        if time.monotonic() >= deadline:
            _end_ansible_processes("")  # before the steps: nothing else runs yet
            return True
        return False

    runner = ansible_runner.run(
        private_data_dir=str(work_dir), host_pattern=",".join(remote),
        module="ansible.builtin.raw", module_args="true",
        inventory=str(inventory.path.resolve()),
        envvars={**_base_env(work_dir), **env}, settings=dict(RUNNER_SETTINGS),
        suppress_env_files=True, quiet=True, ident="warm-up", cancel_callback=cancel)
    _scrub_artifacts(work_dir)
    return time.monotonic() - started if runner.status == "successful" else None
