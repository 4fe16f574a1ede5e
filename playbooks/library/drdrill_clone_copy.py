#!/usr/bin/python
"""Ansible module for pg-clone.yml (drdrill run --isolated, docs/isolated.md): run the copy
(pg_basebackup from the standby) and read the primary's position the instant it returns.

Two tasks would leave Ansible's task start-up (0.1-3 s) between the copy's end and the
reading, and every write in that gap would count as the clone's lag; here the gap is one
psql start. Both commands are argv lists (no shell); the module reports their output, the
copy's duration and the gap, and always changes something (a new data dir).
"""

from __future__ import annotations

import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: drdrill_clone_copy
short_description: Copy a standby, then read the primary's position at once
options:
  copy_argv: {type: list, elements: str, required: true, description: the copy command}
  position_argv: {type: list, elements: str, required: true, description: psql reading
    the primary's position}
  timeout: {type: float, default: 3600, description: seconds for the copy}
"""


def main() -> None:
    module = AnsibleModule(argument_spec={
        "copy_argv": {"type": "list", "elements": "str", "required": True},
        "position_argv": {"type": "list", "elements": "str", "required": True},
        "timeout": {"type": "float", "default": 3600.0},
    })
    params = module.params
    started = time.time()
    try:
        copy = subprocess.run(params["copy_argv"], capture_output=True, text=True,
                              timeout=params["timeout"], check=False, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=f"copy failed: {exc}", changed=True)
    ended = time.time()
    if copy.returncode != 0:
        module.fail_json(msg=f"copy failed (rc={copy.returncode}): {copy.stderr.strip()}",
                         rc=copy.returncode, stderr=copy.stderr, changed=True)
    try:
        position = subprocess.run(params["position_argv"], capture_output=True, text=True,
                                  timeout=30, check=False, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        module.fail_json(msg=f"reading the primary's position failed: {exc}", changed=True)
    if position.returncode != 0:
        module.fail_json(msg=f"reading the primary's position failed: "
                             f"{position.stderr.strip()}", changed=True)
    module.exit_json(changed=True, copy_s=round(ended - started, 3), copy_end=ended,
                     stdout=position.stdout.strip(), copy_stderr=copy.stderr[-2000:])


if __name__ == "__main__":
    main()
