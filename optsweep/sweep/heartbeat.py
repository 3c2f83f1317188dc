"""Dead workers on any host: a trial's job beats while it runs; a sweeper fails a RUNNING trial whose
job fell silent, and re-runs its setting once (``optsweep.sweep._optuna_impl``).

RDB storages (SQLite, PostgreSQL, MySQL): Optuna's own heartbeat. The job records
``storage.record_heartbeat(trial_id)`` every ``heartbeat_interval`` seconds; before claiming, the
sweeper calls ``optuna.storages.fail_stale_trials(study)``, which fails the RUNNING trials whose last
beat is older than ``grace_period`` seconds (the database's clock, so hosts' clocks do not matter).
Optuna does both only inside ``Study.optimize``, which an ask-and-tell sweeper never calls. A trial
that never beat (its job still queued) is never stale there.

Journal storages (Optuna has no heartbeat for them): the job renews ``heartbeat.json`` in its job
directory (``optsweep.lease``'s record plus ``stale_s`` = ``grace_period``), and the sweeper writes
one when it claims a trial, with ``stale_s`` = ``dead_after_s``: a SLURM job may sit in the queue
that long before its first beat. A RUNNING trial is dead when no record in its job directory is live
(``heartbeat.json``, or the ``lease.json`` of optsweep's training, stale after 120 s; live means
renewed within its ``stale_s`` and, on this host, its process exists), or, with neither file there
(a trial claimed by an older optsweep), once it started more than ``dead_after_s`` ago. Every worker
of a journal study must share ``hydra.sweep.dir``: that is where the records are read.

Torch-free; optuna is imported only where a storage is used.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, Optional

from optsweep import lease
from optsweep.contract import HEARTBEAT_FILE, LEASE_FILE, atomic_write

log = logging.getLogger(__name__)


def write_record(job_dir: Path, stale_s: float) -> None:
    """``heartbeat.json``: this process is alive now, and for ``stale_s`` seconds more."""
    record = {"owner": lease.owner_id(), "host": socket.gethostname(), "pid": os.getpid(),
              "renewed": time.time(), "stale_s": float(stale_s)}
    Path(job_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(job_dir) / HEARTBEAT_FILE, lambda f: json.dump(record, f))


def silence(job_dir: Path, started: Optional[datetime], dead_after_s: float,
            now: Optional[float] = None) -> Optional[str]:
    """Why the RUNNING trial whose job runs in ``job_dir`` is dead, or None while it may be alive
    (journal storages; see the module docstring)."""
    now = time.time() if now is None else now
    records = _records(job_dir)
    if any(_is_live(r, now) for r in records.values()):
        return None
    if records:
        name, last = max(records.items(), key=lambda item: float(item[1].get("renewed", 0.0)))
        return (f"its worker died: {name} in {job_dir}, last renewed "
                f"{now - float(last.get('renewed', 0.0)):.0f} s ago by {last.get('owner')}, "
                "is no longer live")
    age = now - started.timestamp() if started else 0.0
    if age > dead_after_s:
        return (f"its worker died: no heartbeat in {job_dir} {age:.0f} s after the trial started "
                f"(hydra.sweeper.dead_after_s={dead_after_s:g})")
    return None


def job_beat(url: str, study_name: str, number: int, job_dir: Path,
             grace_s: float) -> Callable[[], None]:
    """What one beat of trial ``number``'s job does: Optuna's heartbeat on an RDB storage,
    ``heartbeat.json`` in ``job_dir`` on a journal."""
    from optsweep.sweep.storage import journal_path, open_storage

    if journal_path(url) is not None:
        return lambda: write_record(job_dir, grace_s)
    storage = open_storage(url)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study_name), number)
    return lambda: storage.record_heartbeat(trial_id)


def has_live_record(job_dir: Path) -> bool:
    """A live ``heartbeat.json`` or ``lease.json`` in ``job_dir``: its job runs somewhere."""
    now = time.time()
    return any(_is_live(r, now) for r in _records(job_dir).values())


def _records(job_dir: Path) -> Dict[str, dict]:
    records = {name: lease.read_lease(job_dir, name) for name in (HEARTBEAT_FILE, LEASE_FILE)}
    return {name: r for name, r in records.items() if r is not None}


def _is_live(record: dict, now: float) -> bool:
    return lease.is_live(record, now, float(record.get("stale_s", lease.STALE_S)))


class Beat:
    """``with Beat(beat, interval_s):`` -- ``beat()`` now and then every ``interval_s`` seconds from
    a daemon thread, until the block ends."""

    def __init__(self, beat: Callable[[], None], interval_s: float, name: str = "") -> None:
        self.beat, self.interval_s = beat, float(interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"optsweep heartbeat {name}".rstrip())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception as exc:  # a passing storage error must not end the beat
                log.warning("%s: a beat was not recorded: %s: %s", self._thread.name,
                            type(exc).__name__, exc)

    def __enter__(self) -> "Beat":
        self.beat()  # at once: a job that started is seen alive from its first second
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
