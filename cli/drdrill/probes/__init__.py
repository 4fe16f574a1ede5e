"""Probes and canaries. Built-in types register themselves when ``load_builtin`` runs
(explicitly, never as an import side effect of the package)."""

from __future__ import annotations

import importlib

_BUILTIN_MODULES = (
    "drdrill.probes.canary_http",
    "drdrill.probes.command",
    "drdrill.probes.net",
    "drdrill.probes.postgres",
    "drdrill.probes.ssh",
)
_loaded = False


def load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module).register()
    _loaded = True
