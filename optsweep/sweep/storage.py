"""Optuna storages: open one with a clear error, and serialise the asks of several workers.

Optuna numbers trials atomically but has no "at most n_trials in this study": two workers that each
count 19 of 20 trials would both ask one more. ``study_lock`` makes count-then-ask atomic: a file
lock next to a SQLite database (SQLite is for one machine), an advisory lock on PostgreSQL (several
machines), MySQL's GET_LOCK.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
from pathlib import Path
from typing import Iterator, Optional

from optsweep.sweep.errors import SweepError

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
DEFAULT_STUDY_NAME = "optsweep"
EXAMPLES = "sqlite:///multirun/NAME/optuna.db or postgresql://USER:PASSWORD@HOST:5432/DATABASE"


def default_storage(sweep_dir: str | Path) -> str:
    """A SQLite database inside the sweep directory: the sweep and its study stay together."""
    return SQLITE_PREFIX + str(Path(sweep_dir) / "optuna.db")


def shown(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def sqlite_path(url: str) -> Optional[Path]:
    if not url.startswith(SQLITE_PREFIX):
        return None
    path = url[len(SQLITE_PREFIX):].split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def uncached(study):
    """``study`` reading and writing the database directly. Optuna 2's _CachedStorage assumes that
    the process that asked a trial is its only writer; here the trial's job (another process or
    machine) reports its epochs, and the cache would tell PRUNED without the last reported value
    and count trials without other workers' new ones."""
    backend = getattr(study._storage, "_backend", None)
    if backend is not None:
        study._storage = backend
    return study


def open_study(url: str, study_name: str, sampler, direction: str):
    """Create or load the study; every way this can fail becomes one ``SweepError``."""
    import optuna

    try:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # SQLite does not create directories
        # workers that start together would race to create the schema (UNIQUE constraint failed)
        with study_lock(url, study_name):
            return uncached(optuna.create_study(study_name=study_name, storage=url,
                                                sampler=sampler, direction=direction,
                                                load_if_exists=True))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(
            f"hydra.sweeper.storage={shown(url)!r} (study {study_name!r}) cannot be opened: "
            f"{type(exc).__name__}: {reason}. Expected a reachable database URL such as "
            f"{EXAMPLES}; check the path, host, credentials and that the database exists"
        ) from exc


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every worker of this study (see the module docstring)."""
    path = sqlite_path(url)
    if path is not None:
        with open(f"{path}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    key = int(hashlib.sha256(study_name.encode()).hexdigest()[:15], 16)  # fits a bigint
    if url.startswith(("postgresql", "postgres")):
        with _sql_lock(url, "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)",
                       key=key):
            yield
    elif url.startswith("mysql"):
        with _sql_lock(url, "SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)",
                       name=f"optsweep-{key}"):
            yield
    else:
        log.warning("no cross-worker lock for %s: run one worker per study", shown(url))
        yield


@contextlib.contextmanager
def _sql_lock(url: str, acquire: str, release: str, **params) -> Iterator[None]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)  # one connection, closed with the lock
    with engine.connect() as conn:
        conn.execute(text(acquire), params)
        try:
            yield
        finally:
            conn.execute(text(release), params)


def worker_id() -> str:
    """Who asked a trial: host and process, so that a later run can tell a dead worker's trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead_local_worker(worker: Optional[str]) -> bool:
    """True for a worker of this host whose process is gone (its RUNNING trials were cut off)."""
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker may be alive: never take its trials
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
