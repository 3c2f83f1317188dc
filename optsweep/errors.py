"""Errors a user can act on. Each names the config key or path, what was expected, and what to try.

The entry point prints their message as one line and exits with status 2, before any training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional


class OptsweepError(Exception):
    """A problem with the user's input or environment, described in the message."""


class ConfigError(OptsweepError):
    def __init__(self, key: str, value: Any, expected: str, hint: str = "") -> None:
        self.key = key
        message = f"{key}={value!r} is invalid: expected {expected}"
        super().__init__(f"{message} ({hint})" if hint else message)


class DataError(OptsweepError):
    """A dataset that is missing, cannot be fetched, or is corrupt."""


class WeightsError(OptsweepError):
    """Pretrained weights that are neither cached nor downloadable."""


def unwritable(path: str | Path) -> Optional[str]:
    """Why ``path`` cannot serve as an output directory (it is created when missing), or None.

    Probed by writing a file, not by permission bits: root passes every permission check, while a
    path below a regular file, a read-only mount or a full disk fails for everyone."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None
