"""Is this worker alive? The one answer for training and the sweeper: who a process is, the records
it renews while it works, and when such a record means its writer died.

Identity. ``owner_id()`` names the holder of a run across requeues (the SLURM job, else host:pid);
``worker_id()`` names the sweeper process that asked a trial (host:pid); a pid means something only
on its own host (``process_gone``), so another host's worker is never judged by it.

Records. A live process renews a small JSON record in a directory: ``lease.json`` while it trains
a run (``RunLease``), ``heartbeat.json`` while an Optuna trial's job runs (``write_record``, with
its own ``stale_s``). A record is live when renewed less than its ``stale_s`` ago and, on this host,
its process exists. ``Renewal`` is the daemon thread that renews either.

The lease makes one trainer per run directory, across processes and machines. The holder writes
``lease.json`` with an exclusive create and renews it every ``REFRESH_S`` seconds while it trains. A
second process that finds a lease renewed less than ``STALE_S`` seconds ago leaves the run alone and
says so; an older lease belongs to a holder that died (a killed job, a lost node) and is taken over.
Pids mean nothing across hosts; a renewal time does, as long as the hosts' clocks agree to well
under ``STALE_S`` (NTP keeps them within milliseconds).

REFRESH_S = 30 s: a write every 30 s is nothing next to an epoch's checkpoint. STALE_S = 120 s:
four missed renewals, which rides out a stalled thread, a slow shared filesystem or its attribute
cache (NFS caches for up to 60 s), while a dead trainer's run is retaken within two minutes.
A SLURM job that is requeued keeps its job id, so it retakes its own run's lease at once.
Takeover is race-free on local and NFS filesystems: the stale file is renamed away (only one
process's rename succeeds), then recreated exclusively.

Dead trials on a journal storage (which has no heartbeat of Optuna's): ``silence`` says why a
RUNNING trial is dead from the records in its job directory (see ``optsweep.sweep._optuna_impl``).
Torch-free and optuna-free.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, Optional

from optsweep.contract import HEARTBEAT_FILE, LEASE_FILE, atomic_write

log = logging.getLogger(__name__)

REFRESH_S = 30.0
STALE_S = 120.0


# --- who ----------------------------------------------------------------------------------------

def owner_id() -> str:
    """Who holds a lease: the SLURM job (stable across requeues), else this host and process."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    return worker_id()


def worker_id() -> str:
    """Who asked a trial: host and process, so that a later run can tell a dead worker's trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(pid) -> bool:
    """True when no process of this host has ``pid`` (a pid names a process on its own host only;
    one that is another user's, or an unreadable pid, counts as alive)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, TypeError, ValueError):
        return False
    return False


def is_dead_local_worker(worker: Optional[str]) -> bool:
    """True for a ``worker_id`` of this host whose process is gone (its trials were cut off)."""
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker may be alive: never take its trials
    return process_gone(pid)


# --- records ------------------------------------------------------------------------------------

def read_lease(run_dir: Path, name: str = LEASE_FILE) -> Optional[dict]:
    """The record in ``run_dir/name`` (``lease.json`` or ``heartbeat.json``: one form), or None."""
    try:
        record = json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_live(record: Optional[dict], now: float, stale_s: Optional[float] = None) -> bool:
    """A record renewed less than ``stale_s`` ago (default: its own ``stale_s``, else
    ``STALE_S``), unless its writer is a process of this host that is gone (on its own host a pid
    does mean something: a killed run is retaken at once)."""
    if not record:
        return False
    stale_s = float(record.get("stale_s", STALE_S)) if stale_s is None else stale_s
    if now - float(record.get("renewed", 0.0)) >= stale_s:
        return False
    return not (record.get("host") == socket.gethostname() and process_gone(record.get("pid")))


def write_record(job_dir: Path, stale_s: float) -> None:
    """``heartbeat.json``: this process is alive now, and for ``stale_s`` seconds more."""
    record = {"owner": owner_id(), "host": socket.gethostname(), "pid": os.getpid(),
              "renewed": time.time(), "stale_s": float(stale_s)}
    Path(job_dir).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(job_dir) / HEARTBEAT_FILE, lambda f: json.dump(record, f))


def _records(job_dir: Path) -> Dict[str, dict]:
    records = {name: read_lease(job_dir, name) for name in (HEARTBEAT_FILE, LEASE_FILE)}
    return {name: r for name, r in records.items() if r is not None}


def has_live_record(job_dir: Path) -> bool:
    """A live ``heartbeat.json`` or ``lease.json`` in ``job_dir``: its job runs somewhere."""
    now = time.time()
    return any(is_live(r, now) for r in _records(job_dir).values())


def silence(job_dir: Path, started: Optional[datetime], dead_after_s: float,
            now: Optional[float] = None) -> Optional[str]:
    """Why the RUNNING trial whose job runs in ``job_dir`` is dead, or None while it may be alive:
    no record there is live, or, with none there at all (a trial claimed by an older optsweep),
    it started more than ``dead_after_s`` ago."""
    now = time.time() if now is None else now
    records = _records(job_dir)
    if any(is_live(r, now) for r in records.values()):
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


class Renewal:
    """``with Renewal(renew, interval_s):`` -- ``renew()`` now and then every ``interval_s``
    seconds from a daemon thread, until the block ends or ``renew`` returns False."""

    def __init__(self, renew: Callable[[], Optional[bool]], interval_s: float,
                 name: str = "renewal") -> None:
        self.renew, self.interval_s = renew, float(interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.renew() is False:
                    return
            except Exception as exc:  # a passing storage or filesystem error must not end it
                log.warning("%s: not renewed: %s: %s", self._thread.name, type(exc).__name__, exc)

    def start(self) -> "Renewal":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> "Renewal":
        self.renew()  # at once: a job that started is seen alive from its first second
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the lease of a run directory ---------------------------------------------------------------

class RunLease:
    """``with RunLease(run_dir) as lease:`` -- ``lease.holder`` is None when this process holds
    the run, else the live holder's record (then the run must be left alone)."""

    def __init__(self, run_dir: Path, *, refresh_s: float = REFRESH_S, stale_s: float = STALE_S,
                 clock: Callable[[], float] = time.time, owner: Optional[str] = None) -> None:
        self.path = Path(run_dir) / LEASE_FILE
        self.refresh_s, self.stale_s, self.clock = refresh_s, stale_s, clock
        self.owner = owner or owner_id()
        self.token = uuid.uuid4().hex
        self.holder: Optional[dict] = None
        self.held = False
        self._renewal: Optional[Renewal] = None

    def __enter__(self) -> "RunLease":
        self.holder = self.acquire()
        if self.holder is None:
            self._renewal = Renewal(self._renew_or_say, self.refresh_s,
                                    name=f"lease {self.path.parent}").start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _record(self) -> dict:
        return {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "token": self.token, "renewed": self.clock()}

    def acquire(self) -> Optional[dict]:
        """Take the lease (None) or return the live holder's record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # each turn either takes the lease or sees another process take it
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                current = read_lease(self.path.parent)
                mine = current is not None and current.get("owner") == self.owner
                if current is not None and is_live(current, self.clock(), self.stale_s) \
                        and not mine:
                    return current
                if current is None and self._young_file():
                    time.sleep(0.05)  # being written by its creator right now
                    continue
                self._move_aside()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._record(), f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return None
        current = read_lease(self.path.parent)
        return current or {"owner": "unknown", "renewed": self.clock()}

    def _young_file(self) -> bool:
        try:
            return self.clock() - self.path.stat().st_mtime < 1.0
        except FileNotFoundError:
            return False

    def _move_aside(self) -> None:
        aside = self.path.with_name(f".{LEASE_FILE}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(self.path, aside)  # only one process's rename finds the file
        except FileNotFoundError:
            return
        log.info("%s: took over a stale lease", self.path.parent)
        aside.unlink(missing_ok=True)

    def renew(self) -> bool:
        """Write a fresh renewal time; False when the lease is no longer this process's."""
        current = read_lease(self.path.parent)
        if not current or current.get("token") != self.token:
            return False
        atomic_write(self.path, lambda f: json.dump(self._record(), f))
        return True

    def _renew_or_say(self) -> bool:
        if self.renew():
            return True
        log.error("%s: the run's lease was taken by another process; this process should stop "
                  "training it", self.path.parent)
        return False

    def release(self) -> None:
        if self._renewal is not None:
            self._renewal.stop()
        if self.held:
            current = read_lease(self.path.parent)
            if current and current.get("token") == self.token:
                self.path.unlink(missing_ok=True)
            self.held = False
