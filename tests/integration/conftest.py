"""Shared fixtures for tests that drive real ansible-runner playbooks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture()
def local_inventory(tmp_path: Path) -> Path:
    """Two local hosts in groups primary/standby, using this interpreter."""
    path = tmp_path / "inventory.yml"
    path.write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "  children:\n"
        "    primary: {hosts: {pg1: {}}}\n"
        "    standby: {hosts: {pg2: {}}}\n"
    )
    return path
