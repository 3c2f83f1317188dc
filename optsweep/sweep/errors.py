"""The one error a sweep raises before any job starts."""

from __future__ import annotations

from hydra.errors import CompactHydraException

from optsweep.errors import OptsweepError


class SweepError(OptsweepError, CompactHydraException):
    """A sweep that cannot start (storage, search space). Hydra prints it as one line, no
    traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(f"optsweep: error: {message}")
