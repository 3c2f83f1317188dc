"""Whether a module can be imported here, asked without importing it (torch-free): the checks
before a sweep's first job (an optimizer's package, a sampler's, the sweeper's ``preload``) must
not pay for the imports themselves."""

from __future__ import annotations

import importlib.util


def importable(name: str) -> bool:
    """True when ``import name`` would find the module (``importlib.util.find_spec``, whose
    errors for a missing parent package or a name that is not a module's mean no)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
