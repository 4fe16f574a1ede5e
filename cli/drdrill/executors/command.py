"""``command:`` steps: one argv on each host of a role, without Ansible and without a shell.

Why: on the RTO path a playbook step pays ~2 s of Ansible start-up and ~0.4 s per task; a
process costs milliseconds locally, one channel on the run's warm paramiko connection
remotely. The guarantees of playbook steps still hold:

- no shell reads the argv: locally it is exec'd as a list; remotely each word is quoted
  (``shlex.join``) after an ``exec`` so the remote shell only starts it;
- timeout and cancel (Ctrl-C, a parallel sibling's abort) end the whole process tree: locally
  the process runs in its own session and every descendant and session member is killed
  (/proc); remotely the command reports its pid first, and a second channel kills that
  pid's tree and session on the host (a setsid'ed grandchild survives only by leaving the
  session and the tree both);
- output goes to files in the attempt's directory and, masked and cut, into the journal
  (``command`` events, one per host); a ``fact:`` step journals its stdout as a ``fact``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdrill.engine.redact import MASK, secret_strings
from drdrill.executors.base import Emit, StepOutcome
from drdrill.executors.inventory import Inventory
from drdrill.executors.proctree import kill_tree, session_members
from drdrill.runbook.commands import UnboundName, render_argv
from drdrill.runbook.model import Step

CONTROLLER = "localhost"  # the host name journaled for local: true
JOURNAL_OUTPUT_CHARS = 4000
_POLL_S = 0.01
_PID_MARK = "drdrill-command-pid:"


@dataclass(frozen=True)
class CommandRequest:
    step: Step
    hosts: tuple[str, ...]  # empty with step.local: the controller
    inventory: Inventory
    variables: Mapping[str, Any]  # runbook vars < -e < step vars (no secrets)
    secret_vars: Mapping[str, Any]
    step_dir: Path
    timeout_s: float | None
    cancel: threading.Event
    emit: Emit
    pool: Any = None  # the run's SshPool (warm connections); one is opened if None


@dataclass
class HostResult:
    host: str
    argv: list[str]
    status: str = "ok"  # ok | failed | timeout | aborted
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    killed: list[int] = field(default_factory=list)
    error: str | None = None


class _Stop:
    """Why to stop waiting: the step's deadline passed, or the step was cancelled."""

    def __init__(self, deadline: float | None, cancel: threading.Event) -> None:
        self.deadline, self.cancel = deadline, cancel

    def why(self) -> str | None:
        if self.cancel.is_set():
            return "aborted"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timeout"
        return None


def run_command_step(request: CommandRequest) -> StepOutcome:
    """Run the step's argv on every host at once; ok when every host exits 0."""
    targets = request.hosts or ((CONTROLLER,) if request.step.local else ())
    if not targets:
        return StepOutcome("failed", "no host to run the command on (the role matched none)")
    try:
        argvs = {h: render_argv(request.step.command, _values(request, h)) for h in targets}
    except UnboundName as exc:
        return StepOutcome("failed", str(exc))
    deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
    stop = _Stop(deadline, request.cancel)
    request.step_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, HostResult] = {}
    threads = [threading.Thread(target=_one, args=(request, h, argvs[h], stop, results),
                                name=f"command-{h}", daemon=True) for h in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _outcome(request, [results[h] for h in targets])


def _values(request: CommandRequest, host: str) -> dict[str, Any]:
    inventory = (request.inventory.all_vars if host == CONTROLLER and request.step.local
                 else request.inventory.vars_of(host))
    return {**inventory, **request.variables, **request.secret_vars,
            "inventory_hostname": host}


def _one(request: CommandRequest, host: str, argv: list[str], stop: _Stop,
         results: dict[str, HostResult]) -> None:
    result = HostResult(host, argv)
    started = time.monotonic()
    out_file = request.step_dir / f"{_safe(host)}.stdout"
    err_file = request.step_dir / f"{_safe(host)}.stderr"
    try:
        if request.step.local or _is_local(request.inventory, host):
            _run_local(result, out_file, err_file, stop)
        else:
            _run_remote(request, result, stop)
            out_file.write_text(result.stdout)
            err_file.write_text(result.stderr)
    except Exception as exc:  # an unreachable host, a missing program: this host failed
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    result.duration_s = round(time.monotonic() - started, 6)
    secrets = secret_strings(request.secret_vars)
    for path in (out_file, err_file):
        _mask_file(path, secrets)
    results[host] = result


def _is_local(inventory: Inventory, host: str) -> bool:
    return str(inventory.vars_of(host).get("ansible_connection", "")) in (
        "local", "ansible.builtin.local")


def _safe(host: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in host) or "host"


def _child_env() -> dict[str, str]:
    """drdrill's environment without the secrets it was given (DRDRILL_SECRET_*)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DRDRILL_SECRET_")}


def _run_local(result: HostResult, out_file: Path, err_file: Path, stop: _Stop) -> None:
    """exec the argv in its own session; output to files (a daemon the command leaves
    behind may keep a pipe open forever, a file never blocks the step)."""
    with out_file.open("wb") as out, err_file.open("wb") as err:
        try:
            proc = subprocess.Popen(result.argv, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, cwd="/", env=_child_env(),
                                    start_new_session=True)
        except OSError as exc:
            result.status = "failed"
            result.error = f"cannot run {result.argv[0]}: {exc.strerror or exc}"
            return
        while proc.poll() is None:
            why = stop.why()
            if why is not None:
                result.status, result.killed = why, _kill_local(proc.pid)
                proc.wait()
                break
            time.sleep(_POLL_S)
    result.rc = proc.returncode
    result.stdout = out_file.read_text(errors="replace")
    result.stderr = err_file.read_text(errors="replace")
    if result.status == "ok" and result.rc != 0:
        result.status = "failed"


def _kill_local(pid: int) -> list[int]:
    """The tree under ``pid`` and every process still in its session (start_new_session:
    session id = pid), so a child reparented away by a double fork is found too."""
    killed = kill_tree(pid)
    members = [p for p in session_members(pid) if p not in killed]
    for member in members:
        killed += kill_tree(member)
    return sorted(set(killed))


def orphans_writing_into(run_dir: Path) -> list[int]:
    """Local command-step processes a dead drdrill left running: their stdout or stderr is
    a file under ``run_dir`` (resume ends them, with their trees and sessions)."""
    needle = f"{run_dir.resolve()}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for fd in ("1", "2"):
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            if target.startswith(needle):
                found.append(int(entry.name))
                break
    return found


def end_local_orphans(run_dir: Path) -> list[int]:
    ended: list[int] = []
    for pid in orphans_writing_into(run_dir):
        if pid not in ended:
            ended.extend(_kill_local(pid))
    return ended


def _remote_target(request: CommandRequest, host: str) -> Any:
    from drdrill.executors.ssh import target_from_vars

    return target_from_vars(host, request.inventory.vars_of(host))


def _run_remote(request: CommandRequest, result: HostResult, stop: _Stop) -> None:
    """One channel on the warm connection: the remote shell prints its pid, then execs the
    quoted argv. Stop → a second channel kills that pid's tree and session on the host."""
    from drdrill.executors.ssh import SshPool

    pool = request.pool if isinstance(request.pool, SshPool) else SshPool()
    target = _remote_target(request, result.host)
    budget = 30.0 if stop.deadline is None else max(0.1, stop.deadline - time.monotonic())
    chan = pool.open_channel(target, min(budget, target.timeouts.channel_s))
    try:
        chan.settimeout(1.0)
        chan.exec_command(f"printf '%s\\n' \"{_PID_MARK}$$\"; exec {shlex.join(result.argv)}")
        out, err = _stream(chan, stop, result)
        if result.status in ("timeout", "aborted"):
            pid = _remote_pid(out)
            try:
                result.killed = _kill_remote(pool, target, pid) if pid is not None else []
            except Exception as exc:  # host lost meanwhile: say so, the status stays
                result.error = f"could not end remote pid {pid}: {exc}"
        else:
            result.rc = chan.recv_exit_status()
            if result.rc != 0:
                result.status = "failed"
    finally:
        chan.close()
        if pool is not request.pool:
            pool.close()
    result.stdout = _strip_pid(out.decode(errors="replace"))
    result.stderr = err.decode(errors="replace")


def _stream(chan: Any, stop: _Stop, result: HostResult) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    while True:
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        if chan.exit_status_ready() and not (chan.recv_ready() or chan.recv_stderr_ready()):
            return bytes(out), bytes(err)
        why = stop.why()
        if why is not None:
            result.status = why
            return bytes(out), bytes(err)
        if chan.closed:
            raise ConnectionError(f"{result.host}: channel closed before the command ended")
        time.sleep(_POLL_S)


def _remote_pid(out: bytes) -> int | None:
    first = out.decode(errors="replace").split("\n", 1)[0].strip()
    value = first[len(_PID_MARK):] if first.startswith(_PID_MARK) else ""
    return int(value) if value.isdigit() else None


def _strip_pid(text: str) -> str:
    return text.split("\n", 1)[1] if text.startswith(_PID_MARK) else text


KILL_SCRIPT = ("t() { kill -STOP \"$1\" 2>/dev/null; for c in $(pgrep -P \"$1\"); do t \"$c\"; "
               "done; echo \"$1\"; kill -KILL \"$1\" 2>/dev/null; }; t {pid}; "
               "for p in $(pgrep -s {pid}); do kill -KILL \"$p\" 2>/dev/null && echo \"$p\"; "
               "done; true")


def _kill_remote(pool: Any, target: Any, pid: int) -> list[int]:
    """Stop then kill ``pid`` and its descendants (depth first), then its session's rest."""
    done = pool.run_shell(target, KILL_SCRIPT.replace("{pid}", str(int(pid))), 10.0, pty=False)
    return sorted({int(w) for w in done.stdout.split() if w.isdigit()})


def _mask_file(path: Path, secrets: list[str]) -> None:
    if not secrets or not path.is_file():
        return
    text = path.read_text(errors="replace")
    masked = _mask(text, secrets)
    if masked != text:
        path.write_text(masked)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _cut(text: str) -> str:
    return text if len(text) <= JOURNAL_OUTPUT_CHARS else "…" + text[-JOURNAL_OUTPUT_CHARS:]


def _outcome(request: CommandRequest, results: list[HostResult]) -> StepOutcome:
    secrets = secret_strings(request.secret_vars)
    step = request.step
    for r in results:
        request.emit("command", {
            "index": step.index, "step": step.name, "host": r.host,
            "argv": [_mask(a, secrets) for a in r.argv], "status": r.status, "rc": r.rc,
            "duration_s": r.duration_s, "stdout": _cut(_mask(r.stdout, secrets)),
            "stderr": _cut(_mask(r.stderr, secrets)), "killed": r.killed})
        if step.fact and r.status == "ok":
            request.emit("fact", {"name": step.fact, "step": step.name, "index": step.index,
                                  "task": "command", "host": r.host,
                                  "value": _mask(r.stdout.strip(), secrets)[:500]})
    for status in ("aborted", "timeout", "failed"):
        bad = [r for r in results if r.status == status]
        if bad:
            return StepOutcome(status, _mask(_error(bad[0], request.timeout_s), secrets),
                               bad[0].rc)
    return StepOutcome("ok", None, 0)


def _error(r: HostResult, timeout_s: float | None) -> str:
    if r.status == "aborted":
        return "cancelled"
    if r.status == "timeout":
        note = f"; {r.error}" if r.error else ""
        return (f"timed out after {timeout_s:g}s on {r.host} (killed {len(r.killed)} "
                f"processes{note})")
    if r.error:
        return f"{r.host}: {r.error}"
    lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
    reason = lines[0][:300] if lines else "no output"
    return f"{r.host}: {Path(r.argv[0]).name} exited {r.rc}: {reason}"

