"""A real ansible-playbook over SSH to the namespace hosts, host-key checking ON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.netns import NetnsHarness

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: where am I
      command: ip -4 -o addr show dev eth0
      register: where
    - name: it is the namespace of the inventory host
      assert:
        that: ansible_host in where.stdout
"""


def _playbook(h: NetnsHarness, tmp_path: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    book = tmp_path / "where.yml"
    book.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_HOME=str(tmp_path / "ah"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_TIMEOUT="5")
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(book)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_ansible_over_ssh_with_host_key_checking(ssh_hosts: NetnsHarness,
                                                 tmp_path: Path) -> None:
    done = _playbook(ssh_hosts, tmp_path, ssh_hosts.inventory_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "db1" in done.stdout and "db2" in done.stdout and "failed=0" in done.stdout


def test_ansible_refuses_wrong_known_hosts(ssh_hosts: NetnsHarness, tmp_path: Path) -> None:
    h = ssh_hosts
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{h.address('db1')} {h.host('db2').host_public_key}\n"
                     f"{h.address('db2')} {h.host('db1').host_public_key}\n")
    inventory = h.write_inventory(tmp_path / "wrong.yml", known_hosts=wrong)
    done = _playbook(h, tmp_path, inventory)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "UNREACHABLE" in output
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in output or \
        "Host key verification failed" in output
