"""The one way tests start a Python process: this interpreter, text output captured, a timeout.

A test that needs a process of its own (a command line as a user types it, an import with torch
blocked, a second trainer racing the first) calls ``python``, or ``module`` / ``code`` for the two
usual forms; ``start`` is the same command without waiting, for a process the test kills.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600  # the suite's per-test timeout (pyproject): a hung child fails its test, not CI
# Coverage's hand-over to child processes (pyproject.toml, [tool.coverage.run] patch), left out of
# the commands started here: under its tracer Hydra takes a process for one under a debugger
# (hydra._internal.utils.is_under_debugger: sys.gettrace(), Hydra 1.3) and prints a full traceback
# where the user reads one line, which these tests check. The sweeper's test apps stay measured.
COVERAGE_HANDOVER = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def environment(extra: Optional[Mapping[str, str]] = None) -> dict:
    """This process's environment with the checkout importable and ``extra`` on top."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    inherited = {k: v for k, v in os.environ.items() if k not in COVERAGE_HANDOVER}
    return {**inherited, "PYTHONPATH": path, **(extra or {})}


def python(*args: str, cwd: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
           timeout: float = TIMEOUT_S, check: bool = False) -> subprocess.CompletedProcess:
    """``python ARGS`` run to its end; ``check``: fail the test, with its stderr, on a non-zero
    status."""
    result = subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=environment(env),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def module(name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m NAME ARGS``."""
    return python("-m", name, *args, **kwargs)


def code(source: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -c SOURCE``."""
    return python("-c", source, **kwargs)


def start(*args: str, cwd: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
          **popen) -> subprocess.Popen:
    """``python ARGS`` started and left running (its output discarded unless ``popen`` says)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, *args], cwd=cwd or ROOT, env=environment(env),
                            **popen)


def optsweep(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m optsweep ARGS``, as a user types it."""
    return module("optsweep", *args, **kwargs)
