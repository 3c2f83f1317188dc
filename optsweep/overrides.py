"""Command-line overrides as text (``+model.x=1``), split the one way every reader splits them.

Hydra's parser gives the same answer but rejects what it cannot parse; these readers look at an
override before Hydra does (to sort the benchmark's keys from the runs', to name the key of one
that Hydra rejects) or after it has been written out (a run's ``overrides.yaml``).
"""

from __future__ import annotations

from typing import Optional

PREFIXES = "+~"  # Hydra's append (+), force (++) and delete (~) marks before a key


def split_override(override: str) -> tuple[str, Optional[str]]:
    """(the key as written, its prefix kept; the value, None where there is no ``=``):
    ``++a.b=1=2`` is ``("++a.b", "1=2")``, ``~a.b`` is ``("~a.b", None)``."""
    written, equals, value = override.partition("=")
    return written, value if equals else None


def override_key(override: str) -> str:
    """The config key ``override`` sets or deletes, without Hydra's prefix: ``+a.b=1``,
    ``++a.b=1``, ``~a.b`` and ``a.b=1`` all name ``a.b`` (a bare key element too)."""
    return split_override(override)[0].lstrip(PREFIXES)
