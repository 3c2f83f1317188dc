"""One trainer per run directory, across processes and machines: a lease, not a pid check.

The holder writes ``lease.json`` (host, pid, its owner id, when it last renewed) with an exclusive
create, and renews it every ``REFRESH_S`` seconds from a daemon thread while it trains. A second
process that finds a lease renewed less than ``STALE_S`` seconds ago leaves the run alone and says
so; an older lease belongs to a holder that died (a killed job, a lost node) and is taken over. Pids
mean nothing across hosts; a renewal time does, as long as the hosts' clocks agree to well under
``STALE_S`` (NTP keeps them within milliseconds).

REFRESH_S = 30 s: a write every 30 s is nothing next to an epoch's checkpoint. STALE_S = 120 s:
four missed renewals, which rides out a stalled thread, a slow shared filesystem or its attribute
cache (NFS caches for up to 60 s), while a dead trainer's run is retaken within two minutes.
A SLURM job that is requeued keeps its job id, so it retakes its own run's lease at once.

Takeover is race-free on local and NFS filesystems: the stale file is renamed away (only one
process's rename succeeds), then recreated exclusively.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

from optsweep.contract import LEASE_FILE, atomic_write

log = logging.getLogger(__name__)

REFRESH_S = 30.0
STALE_S = 120.0


def owner_id() -> str:
    """Who holds a lease: the SLURM job (stable across requeues), else this host and process."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    return f"{socket.gethostname()}:{os.getpid()}"


def read_lease(run_dir: Path, name: str = LEASE_FILE) -> Optional[dict]:
    """The record in ``run_dir/name`` (also a job's ``heartbeat.json``: the same form), or None."""
    try:
        record = json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_live(record: Optional[dict], now: float, stale_s: float = STALE_S) -> bool:
    """A lease renewed less than ``stale_s`` ago, unless its holder is a process of this host that
    is gone (on its own host a pid does mean something: a killed run is retaken at once)."""
    if not record or now - float(record.get("renewed", 0.0)) >= stale_s:
        return False
    return not (record.get("host") == socket.gethostname() and process_gone(record.get("pid")))


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
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "RunLease":
        self.holder = self.acquire()
        if self.holder is None:
            self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                            name=f"lease {self.path.parent}")
            self._thread.start()
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

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            if not self.renew():
                log.error("%s: the run's lease was taken by another process; this process "
                          "should stop training it", self.path.parent)
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            current = read_lease(self.path.parent)
            if current and current.get("token") == self.token:
                self.path.unlink(missing_ok=True)
            self.held = False
