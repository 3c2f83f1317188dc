"""Optuna storages: name one with a string, open it with a clear error, and serialise the asks of
several workers.

A storage string is either a database URL (SQLAlchemy's: ``sqlite:///multirun/x/optuna.db``,
``postgresql://USER:PASSWORD@HOST:5432/DB``, ``mysql+pymysql://...``) or ``journal:PATH`` for
Optuna's JournalStorage on a file (``journal:///abs/path/optuna.journal`` or
``journal:relative/path``), which needs no database server and works on shared filesystems (its
writes are serialised by ``JournalFileOpenLock``, an ``O_EXCL`` lock file, not ``fcntl``). The
sweeper hands each job the absolute form, so a job reopens the same study from any directory.

Optuna numbers trials atomically but has no "at most n_trials in this study": two workers that each
count 19 of 20 trials would both ask one more. ``study_lock`` makes count-then-ask atomic: a file
lock next to a SQLite database (SQLite is for one machine), an ``O_EXCL`` lock file next to a
journal (shared filesystems), an advisory lock on PostgreSQL (``pg_advisory_lock``), MySQL's
``GET_LOCK``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, NamedTuple, Optional, Sequence

from optsweep import contract
from optsweep.lease import write_record
from optsweep.sweep.errors import SweepError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
JOURNAL_PREFIX = "journal:"
DEFAULT_STUDY_NAME = "optsweep"
EXAMPLES = ("sqlite:///multirun/NAME/optuna.db, journal:///shared/NAME/optuna.journal or "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE")
SQLITE_TIMEOUT_S = 60  # several workers write one SQLite file: wait for its lock, do not fail


class Heartbeat(NamedTuple):
    """Optuna's heartbeat settings for an RDB storage: a beat every ``interval_s`` seconds, stale
    after ``grace_s`` (``job_beat``; the sweeper fails silent trials)."""
    interval_s: int
    grace_s: int


def default_storage(sweep_dir: str | Path) -> str:
    """A SQLite database inside the sweep directory: the sweep and its study stay together."""
    return SQLITE_PREFIX + str(Path(sweep_dir).absolute() / contract.OPTUNA_DB_FILE)


def shown(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    if url.startswith(JOURNAL_PREFIX):
        return url
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


def journal_path(url: str) -> Optional[Path]:
    """The file of ``journal:///abs/path`` or ``journal:relative/path``."""
    if not url.startswith(JOURNAL_PREFIX):
        return None
    path = url[len(JOURNAL_PREFIX):]
    if path.startswith("//"):
        path = path[2:]  # journal:///abs -> /abs (journal://rel would be a host: read it as a path)
    if not path:
        raise SweepError(f"hydra.sweeper.storage={url!r} names no file: expected "
                         "journal:///abs/path/optuna.journal or journal:relative/path")
    return Path(path)


def absolute(url: str) -> str:
    """``url`` with a relative SQLite or journal path made absolute (jobs may change directory)."""
    path = sqlite_path(url)
    if path is not None:
        query = url[url.index("?"):] if "?" in url else ""
        return SQLITE_PREFIX + str(path.absolute()) + query
    path = journal_path(url)
    if path is not None:
        return f"{JOURNAL_PREFIX}//{path.absolute()}"
    return url


def open_storage(url: str, heartbeat: Optional[Heartbeat] = None) -> "optuna.storages.BaseStorage":
    """The Optuna storage behind ``url`` (creates a SQLite schema: call under ``study_lock``); an
    RDB storage with ``heartbeat`` can tell stale trials (``job_beat``)."""
    import warnings

    import optuna

    path = journal_path(url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(
            JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite_path(url) else {}
    if heartbeat is None:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=heartbeat.interval_s,
            grace_period=heartbeat.grace_s)


# the storage this process's jobs use for their own trial: one, for the sweep's URL
_job_storage: Dict[str, "optuna.storages.BaseStorage"] = {}


def job_storage(url: str) -> "optuna.storages.BaseStorage":
    """The storage a job reports to and beats on, opened once per process: a pool's worker runs
    job after job on the same study, and a job's beat and its reports share one engine (opening
    an RDB storage takes ~40 ms, twice a job). ``forget_job_storage`` ends it."""
    if url not in _job_storage:
        forget_job_storage()
        _job_storage[url] = open_storage(url)
    return _job_storage[url]


def forget_job_storage() -> None:
    """Drop the jobs' storage (the sweeper, at its end: jobs of the basic launcher ran in its
    process, and the next sweep there may use a new database at the same path)."""
    _job_storage.clear()


def open_study(url: str, study_name: str, directions: Sequence[str],
               sampler: "optuna.samplers.BaseSampler", pruner: "optuna.pruners.BasePruner",
               heartbeat: Optional[Heartbeat] = None
               ) -> "tuple[optuna.Study, optuna.storages.BaseStorage]":
    """Create or load the study and return it with its storage; every way this can fail (and a
    study whose directions differ from ``directions``) becomes one ``SweepError``."""
    import optuna

    try:
        for path in (sqlite_path(url), journal_path(url)):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)  # neither creates directories
        # workers that start together would race to create the schema (UNIQUE constraint failed)
        with study_lock(url, study_name):
            storage = open_storage(url, heartbeat)
            study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                        pruner=pruner,
                                        # strings, which Optuna checks (typed as its literals)
                                        directions=list(directions),  # type: ignore[arg-type]
                                        load_if_exists=True)
    except SweepError:
        raise
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SweepError(
            f"hydra.sweeper.storage={shown(url)!r} (study {study_name!r}) cannot be opened: "
            f"{type(exc).__name__}: {reason}. Expected a reachable storage such as {EXAMPLES}; "
            "check the path, host, credentials, driver and that the database exists") from exc
    found = [d.name.lower() for d in study.directions]
    if found != [d.lower() for d in directions]:
        raise SweepError(f"hydra.sweeper.direction={list(directions)} but study {study_name!r} in "
                         f"{shown(url)} was created with {found}: use another "
                         "hydra.sweeper.study_name or the study's directions")
    return study, storage


POSTGRES_PREFIXES, MYSQL_PREFIXES = ("postgresql", "postgres"), ("mysql",)  # advisory locks


def has_study_lock(url: str) -> bool:
    """Whether ``study_lock`` serialises the workers of ``url`` (every storage but an unknown
    one)."""
    return (sqlite_path(url) is not None or journal_path(url) is not None
            or url.startswith(POSTGRES_PREFIXES + MYSQL_PREFIXES))


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
    path = journal_path(url)
    if path is not None:
        with _journal_lock(path):
            yield
        return
    key = int(hashlib.sha256(study_name.encode()).hexdigest()[:15], 16)  # fits a bigint
    if url.startswith(POSTGRES_PREFIXES):
        with _sql_lock(url, "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)",
                       key=key):
            yield
    elif url.startswith(MYSQL_PREFIXES):
        with _sql_lock(url, "SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)",
                       name=f"optsweep-{key}"):
            yield
    else:
        log.warning("no cross-worker lock for %s: run one worker per study", shown(url))
        yield


@contextlib.contextmanager
def _journal_lock(path: Path) -> Iterator[None]:
    """Optuna's O_EXCL file lock on ``<journal>.ask.lock``: not the journal's own ``.lock``, which
    Optuna takes for every write made while this one is held."""
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(f"{path}.ask")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def job_beat(url: str, study_name: str, number: int, job_dir: Path,
             grace_s: float) -> Callable[[], None]:
    """What one beat of trial ``number``'s job does: Optuna's heartbeat on an RDB storage (its
    ``fail_stale_trials`` reads it; the sweeper reads the same itself, to record why first), and
    ``heartbeat.json`` in ``job_dir`` on a journal, which has no heartbeat of Optuna's."""
    if journal_path(url) is not None:
        return lambda: write_record(job_dir, grace_s)
    storage = job_storage(url)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study_name), number)
    # an RDB storage (not a journal); Optuna types it as BaseStorage
    return lambda: storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
