"""``ProcessPool``: worker processes of optsweep's own, one per slot, each running one Hydra job
at a time, for as long as the pool lives: the joblib launcher's processes without its batch
barrier.

A worker is spawned without re-running the parent's ``__main__`` (as loky starts its workers) and
imports the task's modules (``preload``) before it says it is ready, so a job's time is its task's.
It runs jobs of any sweep: a sweep's Hydra context, config and task arrive cloudpickled the first
time the worker gets one of that sweep's jobs, and stay (``optsweep.benchmark``'s pool runs every
study, confirmation and defaults sweep through one set of workers; the sweeper, one sweep).

A worker that dies ends its own job only, and a fresh worker takes its slot; one that dies at
start-up is said in one line with its own error and replaced, ``START_TRIES`` times in a row for a
slot stop the sweep; a worker whose parent died stops (it would run a job that the rerun runs
again). When nothing is left to start, idle slots lend their cores to the jobs still running
(``lend``: a signal to each worker, whose job's ``optsweep.sweep.trial.on_lent_cores`` callback
takes them).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_for
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from hydra.core.singleton import Singleton

from optsweep.resources import available_cores, threads_per_job
from optsweep.sweep import _multiprocessing_private, trial
from optsweep.sweep.errors import SweepError
from optsweep.sweep.runners import Ended, Job, Sweep, ended, failed, run_one
from optsweep.sweep.trial import SLOT_ENV, SLOTS_ENV

log = logging.getLogger(__name__)

PARENT_CHECK_S = 0.5  # how often a pool worker checks that its parent still lives
LEND_SIGNAL = getattr(signal, "SIGUSR1", None)  # "cores lent": ProcessPool.lend to a worker
# A slot whose worker dies this many times in a row before it is ready stops the sweep: a fault of
# start-up (an import that fails, a preload that crashes) fails every worker alike; a worker killed
# once (the OOM killer, a signal) is replaced.
START_TRIES = 3
READY = "ready"  # a worker's first message; else ("died", "Type: message") before it exits
# a worker's messages: (SWEEP, key, payload), the context of a sweep's jobs, sent once per worker;
# (JOB, key, number, overrides), one of its jobs; None, stop
SWEEP, JOB = "sweep", "job"
WORKER_NAME = "optsweep slot "


class _Worker(NamedTuple):
    process: Any  # multiprocessing's SpawnProcess
    conn: Any  # our end of its pipe
    cores: Any  # shared int: the cores its job may use, read by the worker on LEND_SIGNAL
    sweeps: Set[str]  # the sweeps whose context it holds


class ProcessPool:
    """``slots`` worker processes, each running one job at a time; a job of ``sweep`` unless the
    job names its own (``Job.sweep``)."""

    def __init__(self, sweep: Sweep, slots: int, preload: Sequence[str] = (),
                 lend_cores: bool = True) -> None:
        self.sweep, self.slots = sweep, slots
        self.cores = available_cores()
        self.lend_cores = lend_cores and LEND_SIGNAL is not None
        self.allotted: Dict[int, int] = {}  # slot -> the cores its running job was given
        self.payloads: Dict[str, bytes] = {}  # sweep key -> its pickled context
        # what every job shares (the config store, the plugins), sent at start-up
        self.start_payload = _dumps(Singleton.get_state())
        self.preload = tuple(preload)
        _multiprocessing_private.spawn_without_main(WORKER_NAME)
        self.context = multiprocessing.get_context("spawn")
        self.running: Dict[int, Job] = {}  # slot -> job
        self.starts = 0  # worker processes started, replacements included
        # started at once, each from a thread of its own (a start waits until its interpreter has
        # read the payload, ~0.2 s), waited for in ready(): they import while the study opens
        self.workers: List[Optional[_Worker]] = [None] * slots
        self.starting = [threading.Thread(target=self._start_into, args=(slot,), daemon=True)
                         for slot in range(slots)]
        for thread in self.starting:
            thread.start()

    def _start_into(self, slot: int) -> None:
        self.workers[slot] = None  # until it has started: a dead one is not waited on again
        try:
            self.workers[slot] = self._start(slot)
        except Exception:  # said by _ready, which starts another
            log.exception("slot %d: its worker process could not be started", slot)

    def _started(self) -> None:
        for thread in self.starting:
            thread.join()
        self.starting = []

    def _start(self, slot: int) -> _Worker:
        ours, theirs = self.context.Pipe()
        cores = self.context.RawValue("i", 0)
        process = self.context.Process(
            target=_serve, args=(theirs, slot, self.slots, os.getpid(), self.preload, cores),
            name=f"{WORKER_NAME}{slot}")
        self.starts += 1
        process.start()  # not a daemon: a job may start processes of its own (data loaders)
        theirs.close()
        # the payload over the pipe, not among the process's arguments: multiprocessing writes
        # those into a pipe whose read end it holds itself until the write ends, so a child that
        # dies before reading more than the pipe's 64 KiB leaves the start waiting for ever
        try:
            ours.send_bytes(self.start_payload)
        except OSError:  # it died already: _ready says how
            pass
        return _Worker(process, ours, cores, set())

    def ready(self) -> None:
        """Wait until every worker has imported ``preload``: a job submitted then starts at once,
        so a trial's start time in its study is its job's."""
        self._started()
        for slot in range(self.slots):
            self._ready(slot)

    def _ready(self, slot: int) -> None:
        """Wait until slot ``slot``'s worker is ready, replacing one that dies at start-up (one
        line each); ``START_TRIES`` deaths in a row stop the sweep with the last one's error."""
        for tries in range(1, START_TRIES + 1):
            died = _start_failure(self.workers[slot])
            if died is None:
                return
            if tries == START_TRIES:
                raise SweepError(f"slot {slot}: its worker process died at start-up {tries} times "
                                 f"in a row, the last {died}; the sweep stops (a module the task "
                                 "or hydra.sweeper.preload imports fails in a fresh process: "
                                 "see the worker's traceback above)")
            log.warning("slot %d: its worker process died at start-up (%s); a new one takes the "
                        "slot (%d of %d tries)", slot, died, tries + 1, START_TRIES)
            self._start_into(slot)

    def _worker(self, slot: int) -> _Worker:
        """Slot ``slot``'s worker (``ready`` and ``_ready`` leave none missing)."""
        worker = self.workers[slot]
        assert worker is not None, f"slot {slot} has no worker process"
        return worker

    def submit(self, job: Job) -> None:
        slot = min(s for s in range(self.slots) if s not in self.running)
        worker = self._worker(slot)
        sweep = job.sweep or self.sweep
        try:
            if sweep.key not in worker.sweeps:
                worker.conn.send((SWEEP, sweep.key, self._payload(sweep)))
                worker.sweeps.add(sweep.key)
            worker.conn.send((JOB, sweep.key, job.number, job.overrides))
        except OSError:  # it died since its last job: wait() finds it by its sentinel
            pass
        self.running[slot] = job
        # what the job takes itself (optsweep.sweep.job.limit_threads)
        self.allotted[slot] = threads_per_job(self.cores, self.slots)

    def _payload(self, sweep: Sweep) -> bytes:
        if sweep.key not in self.payloads:
            # cloudpickle, as loky does: a task defined in a script's __main__ pickles by value
            self.payloads[sweep.key] = _dumps((sweep.hydra_context, sweep.config,
                                               sweep.task_function))
        return self.payloads[sweep.key]

    def lend(self, nothing_to_start: bool) -> int:
        """Give the cores of idle slots to the jobs still running when ``nothing_to_start`` (the
        final drain), and take them back if a job starts after all: each worker whose job's
        cores change is told by a signal. Returns how many idle slots' cores are lent now."""
        if not self.lend_cores or LEND_SIGNAL is None or not self.running:
            return 0
        lending = nothing_to_start and len(self.running) < self.slots
        share = threads_per_job(self.cores, len(self.running) if lending else self.slots)
        for slot in sorted(self.running):
            if self.allotted.get(slot) == share:
                continue
            self.allotted[slot] = share
            worker = self._worker(slot)
            worker.cores.value = share
            try:
                os.kill(worker.process.pid, LEND_SIGNAL)
            except OSError:  # it just died: wait() collects it
                continue
            log.info("trial %d: lent %d cores (%s)", self.running[slot].number, share,
                     "nothing left to start: idle slots lend theirs" if lending
                     else "a trial started: the slot's own share")
        base = threads_per_job(self.cores, self.slots)
        return self.slots - len(self.running) if lending and share > base else 0

    def wait(self, timeout_s: float) -> List[Ended]:
        if not self.running:
            return []
        watched = {}
        for slot in self.running:
            worker = self._worker(slot)
            watched[worker.conn] = watched[worker.process.sentinel] = slot
        ready = wait_for(list(watched), timeout_s)
        done: List[Ended] = []
        for slot in sorted({watched[r] for r in ready}):
            done.append(self._collect(slot))
        return done

    def _collect(self, slot: int) -> Ended:
        worker, job = self._worker(slot), self.running.pop(slot)
        self.allotted.pop(slot, None)
        try:
            value, error, trace = worker.conn.recv()
            return Ended(job, value, error, trace)
        except (EOFError, OSError):
            worker.process.join(timeout=10)
            code = worker.process.exitcode
            log.warning("slot %d: the process running trial %d died (exit code %s); a new one "
                        "takes the slot", slot, job.number, code)
            self._start_into(slot)
            self._ready(slot)
            return Ended(job, error=f"its job's process died (exit code {code})")

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: each ends after its job (``graceful``), or at once (a sweep that
        could not start: a worker may still be importing)."""
        self._started()
        workers = [worker for worker in self.workers if worker is not None]
        for worker in workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in workers:
            worker.process.join(timeout=30 if graceful else 0)
            if worker.process.is_alive():
                worker.process.terminate()


def _start_failure(worker: Optional[_Worker]) -> Optional[str]:
    """None once ``worker`` says it is ready; else how it died: its exit code and its own last
    error line. Waits on its pipe and on its process's end alike, so a death is never waited out."""
    if worker is None:
        return "it could not be started: see the error above"
    wait_for([worker.conn, worker.process.sentinel])
    message = None
    try:
        if worker.conn.poll():
            message = worker.conn.recv()
    except (EOFError, OSError):
        pass
    if message == READY:
        return None
    worker.process.join(timeout=10)
    said = f": {message[1]}" if isinstance(message, tuple) else ""
    return f"exit code {worker.process.exitcode}{said}"


def _serve(conn: Any, slot: int, slots: int, parent_pid: int, preload: Sequence[str],
           cores: Any) -> None:
    """A pool worker: run the jobs it is sent until told to stop or its parent is gone."""
    threading.Thread(target=_stop_without, args=(parent_pid,), daemon=True).start()
    # jobs are placed on GPUs by slot and share the cores by the pool's slots (optsweep.sweep.job)
    os.environ[SLOT_ENV], os.environ[SLOTS_ENV] = str(slot), str(slots)
    try:
        _start_worker(conn, preload)
    except BaseException as exc:  # said to the parent in one line; the traceback goes to stderr
        text = str(exc).strip()
        conn.send(("died", f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"))
        raise
    if LEND_SIGNAL is not None:  # before "ready": the signal's default action ends a process
        signal.signal(LEND_SIGNAL, lambda signum, frame: trial.lend_cores(cores.value))
        signal.siginterrupt(LEND_SIGNAL, False)  # system calls restart rather than fail (EINTR)
    conn.send(READY)
    atexit.register(_exit_without_teardown)  # first registered, so it runs after the jobs' own
    sweeps: Dict[str, Tuple[Any, Any, Any]] = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        if message[0] == SWEEP:
            import pickle

            sweeps[message[1]] = pickle.loads(message[2])
            continue
        _, key, number, overrides = message
        end = _run(sweeps[key], Job(number, tuple(overrides), ""))
        try:
            conn.send((end.value, end.error, end.trace))
        except Exception as exc:  # an unpicklable return value
            conn.send((None, f"the task's return value cannot be sent back: {exc}", None))


def _run(sweep: Tuple[Any, Any, Any], job: Job) -> Ended:
    """One job in a worker, as its sweep's launcher would run it."""
    hydra_context, config, task_function = sweep
    trial.forget_cores()
    try:
        return ended(job, run_one(hydra_context, config, task_function, job.number,
                                  job.overrides))
    except Exception as exc:  # outside run_job's own guard: this job's end, not the worker's
        return failed(job, exc)


def _start_worker(conn: Any, preload: Sequence[str]) -> None:
    """A worker's start-up: what every job shares, then the imports every job needs."""
    import importlib
    import pickle

    Singleton.set_state(pickle.loads(conn.recv_bytes()))
    # each job opens its study, and the task's own imports (hydra.sweeper.preload): before the
    # first trial, not inside its time
    for name in ("optuna", *preload):
        importlib.import_module(name)


def _exit_without_teardown() -> None:
    """A worker's last exit handler: the interpreter's teardown of what the jobs imported (torch)
    takes a second or two that the sweep would wait for, and there is nothing left to tear down."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _stop_without(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)  # the parent died: a rerun runs this job again


def _dumps(obj: Any) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # the joblib launcher's joblib carries one
        from joblib.externals import cloudpickle
    return cloudpickle.dumps(obj)
