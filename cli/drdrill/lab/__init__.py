"""The embedded lab: a PostgreSQL primary and a streaming hot standby on 127.0.0.1.

Library API (no click, no rich): ``lab_up``, ``lab_status``, ``lab_down`` with a frozen
``LabConfig``; failures raise ``drdrill.errors.LabError``.
"""

from drdrill.lab.api import (
    LAB_EXTRAS,
    lab_down,
    lab_extras_status,
    lab_extras_up,
    lab_status,
    lab_up,
    read_env,
    service_dsn,
)
from drdrill.lab.config import LabConfig, LabStatus, NodeStatus, default_lab_dir

__all__ = ["LAB_EXTRAS", "LabConfig", "LabStatus", "NodeStatus", "default_lab_dir", "lab_down",
           "lab_extras_status", "lab_extras_up", "lab_status", "lab_up", "read_env",
           "service_dsn"]
