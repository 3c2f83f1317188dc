"""Errors a user can act on. Each names the config key or path, what was expected, and what to try.

The entry point prints their message as one line and exits with status 2, before any training.
"""

from __future__ import annotations

from typing import Any


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
