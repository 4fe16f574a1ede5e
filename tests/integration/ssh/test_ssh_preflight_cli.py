"""`drdrill preflight` through the real console script: table, exit 0 / 2 (not ready, bad input)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.netns import NetnsHarness

DRDRILL = str(Path(sys.executable).parent / "drdrill")
RUNBOOK = """\
version: 1
name: ssh-preflight
objectives: {rto: 30s, rpo: 0s}
roles: {primary: primary, standby: standby}
steps:
  - name: standby answers
    probe: {type: ssh, host: db2, command: "true"}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DRDRILL, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


def test_preflight_command_exit_codes(ssh_hosts: NetnsHarness, tmp_path: Path) -> None:
    runbook = tmp_path / "rb.yml"
    runbook.write_text(RUNBOOK)
    inventory = str(ssh_hosts.inventory_path)
    done = _cli("preflight", str(runbook), "-i", inventory, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "db1" in done.stdout and "host_key" in done.stdout and "checks passed" in done.stdout

    ssh_hosts.known_hosts.write_text(
        f"{ssh_hosts.address('db2')} {ssh_hosts.host('db2').host_public_key}\n")
    done = _cli("preflight", str(runbook), "-i", inventory, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr  # not ready: DESIGN.md exit 2
    assert "FAIL" in done.stdout and ssh_hosts.host("db1").fingerprint[:20] in done.stdout

    done = _cli("preflight", str(runbook), "-i", inventory, "--accept-new-host-keys",
                cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    done = _cli("preflight", str(tmp_path / "missing.yml"), "-i", inventory, cwd=tmp_path)
    assert done.returncode == 2
