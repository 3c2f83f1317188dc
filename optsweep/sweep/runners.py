"""Submit one job, poll for ended ones: how the sweeper's slots run trials without a batch barrier.

Hydra's ``Launcher.launch`` runs a batch and returns when all of it is done, and it is not safe to
call from several threads (the joblib launcher shares one process-wide loky executor; Hydra's
per-job state, HydraConfig, JobRuntime, logging, the working directory and ``env_set``'s
``os.environ``, is global to a process). So the sweeper runs jobs through a runner of its own,
chosen from ``hydra.launcher``'s ``_target_``, each job run as Hydra's own launchers run one
(``hydra.core.utils.run_job`` on the job's sweep config) where the launcher would run it:

- the basic launcher: ``InProcess``, one job at a time in this process, as the basic launcher does;
- the joblib launcher: ``ProcessPool``, one worker process per slot (spawned without re-running
  ``__main__``, and reused job after job, as loky starts and reuses its workers); a worker that
  dies ends its own job only, and a fresh worker takes its slot; a worker that dies at start-up is
  said in one line with its own error and replaced, ``START_TRIES`` times in a row for a slot stop
  the sweep; a worker whose sweeper died stops (it would run a trial the rerun runs again);
  when nothing is left to start, idle slots lend their cores to the jobs still running (``spread``:
  a signal to each worker, whose job's ``optsweep.sweep.trial.on_more_cores`` callback takes them);
- submitit's launchers (``hydra/launcher=submitit_slurm``, ``submitit_local``): ``Submitit``, one
  ``executor.submit`` per job of the launcher itself, the callable its ``launch`` maps over a job
  array, polled with ``done()``.

Any other launcher: ``runner_for`` returns None and the sweeper launches batches through it.
Ray Tune and Optuna's own ``n_jobs`` (``optuna/study/_optimize.py``: a thread pool that submits a
new trial whenever a future completes, ``wait(FIRST_COMPLETED)``) schedule the same way.
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
import traceback
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from optsweep.resources import available_cores, threads_per_job
from optsweep.sweep import _multiprocessing_private, trial
from optsweep.sweep.errors import SweepError
from optsweep.sweep.trial import SLOT_ENV

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often submitit's jobs are asked whether they are done (it caches sacct calls)
PARENT_CHECK_S = 0.5  # how often a pool worker checks that its sweeper still lives
LEND_SIGNAL = getattr(signal, "SIGUSR1", None)  # "cores offered": ProcessPool.spread to a worker
# A slot whose worker dies this many times in a row before it is ready stops the sweep: a fault of
# start-up (an import that fails, a preload that crashes) fails every worker alike; a worker killed
# once (the OOM killer, a signal) is replaced.
START_TRIES = 3
READY = "ready"  # a worker's first message; else ("died", "Type: message") before it exits
WORKER_NAME = "optsweep slot "


class Job(NamedTuple):
    number: int  # the trial's number: hydra.job.num
    overrides: Tuple[str, ...]
    shown: str  # what the log says the job runs: the trial's parameters


class Ended(NamedTuple):
    job: Job
    value: Any = None  # the task's return value (a trial.Pruned when it was pruned)
    error: Optional[str] = None  # "Type: message" of a job that failed or died
    trace: Optional[str] = None  # the failure's traceback, for the log

    @property
    def raised(self) -> bool:
        """The task raised (a crash): its process lived to send the traceback. A job whose process
        died, or whose return value was no answer, has no traceback."""
        return self.error is not None and self.trace is not None


def run_one(hydra_context: HydraContext, config: DictConfig, task_function: TaskFunction,
            number: int, overrides: Sequence[str]) -> JobReturn:
    """One job, as hydra-joblib-launcher's ``execute_job`` runs it (Hydra 1.3)."""
    setup_globals()
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{number}"
        sweep_config.hydra.job.num = number
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def ended(job: Job, ret: JobReturn) -> Ended:
    """A Hydra job's return as an ``Ended``."""
    if ret.status == JobStatus.COMPLETED:
        return Ended(job, ret.return_value)
    try:
        ret.return_value  # noqa: B018 (re-raises the task's exception; Hydra says which job)
        exc: BaseException = RuntimeError(f"job status {ret.status.name}")
    except Exception as raised:
        exc = raised
    return failed(job, exc)


def failed(job: Job, exc: BaseException) -> Ended:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return Ended(job, error=f"{type(exc).__name__}: {exc}", trace=trace)


class InProcess:
    """One job at a time in this process (the basic launcher)."""

    slots = 1

    def __init__(self, hydra_context: HydraContext, config: DictConfig,
                 task_function: TaskFunction) -> None:
        self.hydra_context, self.config, self.task_function = hydra_context, config, task_function
        self.queued: List[Job] = []

    def ready(self) -> None:
        pass

    def submit(self, job: Job) -> None:
        self.queued.append(job)

    def spread(self, nothing_to_start: bool) -> int:
        return 0  # one slot: none ever idles beside a running job

    def wait(self, timeout_s: float) -> List[Ended]:
        if not self.queued:
            return []
        job = self.queued.pop(0)
        ret = run_one(self.hydra_context, self.config, self.task_function, job.number,
                      job.overrides)
        # run_job configured logging for its job: give the sweeper its own back, as the basic
        # launcher does before each batch
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [ended(job, ret)]

    def close(self, graceful: bool = True) -> None:
        pass


class _Worker(NamedTuple):
    process: Any  # multiprocessing's SpawnProcess
    conn: Any  # our end of its pipe
    offer: Any  # shared int: the cores its job may use, read by the worker on LEND_SIGNAL


class ProcessPool:
    """``slots`` worker processes of its own, each running one job at a time (the joblib
    launcher's processes, without its batch)."""

    def __init__(self, hydra_context: HydraContext, config: DictConfig,
                 task_function: TaskFunction, slots: int, preload: Sequence[str] = (),
                 lend_cores: bool = True) -> None:
        self.slots = slots
        self.cores = available_cores()
        self.lend_cores = lend_cores and LEND_SIGNAL is not None
        self.allotted: Dict[int, int] = {}  # slot -> the cores its running job was given
        # cloudpickle, as loky does: a task defined in a script's __main__ pickles by value
        self.payload = _dumps((hydra_context, config, task_function, Singleton.get_state()))
        self.preload = tuple(preload)
        _multiprocessing_private.spawn_without_main(WORKER_NAME)
        self.context = multiprocessing.get_context("spawn")
        self.running: Dict[int, Job] = {}  # slot -> job
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
        offer = self.context.RawValue("i", 0)
        process = self.context.Process(target=_serve, args=(theirs, slot, os.getpid(),
                                                            self.preload, offer),
                                       name=f"{WORKER_NAME}{slot}")
        process.start()  # not a daemon: a job may start processes of its own (data loaders)
        theirs.close()
        # the payload over the pipe, not among the process's arguments: multiprocessing writes
        # those into a pipe whose read end it holds itself until the write ends, so a child that
        # dies before reading more than the pipe's 64 KiB leaves the start waiting for ever
        try:
            ours.send_bytes(self.payload)
        except OSError:  # it died already: _ready says how
            pass
        return _Worker(process, ours, offer)

    def ready(self) -> None:
        """Wait until every worker has imported the task and ``preload``: a trial asked for then
        starts its job at once, so the study's start time is the job's."""
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

    def submit(self, job: Job) -> None:
        slot = min(s for s in range(self.slots) if s not in self.running)
        try:
            self.workers[slot].conn.send((job.number, job.overrides))
        except OSError:  # it died since its last job: wait() finds it by its sentinel
            pass
        self.running[slot] = job
        # what the job takes itself (optsweep.sweep.job.limit_threads)
        self.allotted[slot] = threads_per_job(self.cores, self.slots)

    def spread(self, nothing_to_start: bool) -> int:
        """Give the cores of idle slots to the jobs still running when ``nothing_to_start`` (the
        final drain), and take them back if a trial starts after all: each worker whose job's
        cores change is told by a signal. Returns how many idle slots' cores are lent now."""
        if not self.lend_cores or LEND_SIGNAL is None or not self.running:
            return 0
        lending = nothing_to_start and len(self.running) < self.slots
        share = threads_per_job(self.cores, len(self.running) if lending else self.slots)
        for slot in sorted(self.running):
            if self.allotted.get(slot) == share:
                continue
            self.allotted[slot] = share
            worker = self.workers[slot]
            worker.offer.value = share
            try:
                os.kill(worker.process.pid, LEND_SIGNAL)
            except OSError:  # it just died: wait() collects it
                continue
            log.info("trial %d: offered %d cores (%s)", self.running[slot].number, share,
                     "nothing left to start: idle slots lend theirs" if lending
                     else "a trial started: the slot's own share")
        base = threads_per_job(self.cores, self.slots)
        return self.slots - len(self.running) if lending and share > base else 0

    def wait(self, timeout_s: float) -> List[Ended]:
        if not self.running:
            return []
        watched = {}
        for slot in self.running:
            worker = self.workers[slot]
            watched[worker.conn] = watched[worker.process.sentinel] = slot
        ready = wait_for(list(watched), timeout_s)
        done: List[Ended] = []
        for slot in sorted({watched[r] for r in ready}):
            done.append(self._collect(slot))
        return done

    def _collect(self, slot: int) -> Ended:
        worker, job = self.workers[slot], self.running.pop(slot)
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


def _serve(conn: Any, slot: int, sweeper_pid: int, preload: Sequence[str], offer: Any) -> None:
    """A pool worker: run the jobs it is sent until told to stop or its sweeper is gone."""
    threading.Thread(target=_stop_without, args=(sweeper_pid,), daemon=True).start()
    os.environ[SLOT_ENV] = str(slot)  # jobs are placed on GPUs by slot (optsweep.sweep.job)
    try:
        hydra_context, config, task_function = _start_worker(conn, preload)
    except BaseException as exc:  # said to the sweeper in one line; the traceback goes to stderr
        text = str(exc).strip()
        conn.send(("died", f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"))
        raise
    if LEND_SIGNAL is not None:  # before "ready": the signal's default action ends a process
        signal.signal(LEND_SIGNAL, lambda signum, frame: trial.lend_cores(offer.value))
        signal.siginterrupt(LEND_SIGNAL, False)  # system calls restart rather than fail (EINTR)
    conn.send(READY)
    atexit.register(_exit_without_teardown)  # first registered, so it runs after the jobs' own
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        number, overrides = message
        job = Job(number, tuple(overrides), "")
        trial.forget_cores()
        try:
            end = ended(job, run_one(hydra_context, config, task_function, number, overrides))
        except Exception as exc:  # outside run_job's own guard: this job's end, not the worker's
            end = failed(job, exc)
        try:
            conn.send((end.value, end.error, end.trace))
        except Exception as exc:  # an unpicklable return value
            conn.send((None, f"the task's return value cannot be sent back: {exc}", None))


def _start_worker(conn: Any, preload: Sequence[str]) -> Tuple[Any, Any, Any]:
    """A worker's start-up: the sweeper's payload, then the imports every job needs."""
    import importlib
    import pickle

    hydra_context, config, task_function, singleton_state = pickle.loads(conn.recv_bytes())
    Singleton.set_state(singleton_state)
    # each job opens its study, and the task's own imports (hydra.sweeper.preload): before the
    # first trial, not inside its time
    for name in ("optuna", *preload):
        importlib.import_module(name)
    return hydra_context, config, task_function


def _exit_without_teardown() -> None:
    """A worker's last exit handler: the interpreter's teardown of what the jobs imported (torch)
    takes a second or two that the sweep would wait for, and there is nothing left to tear down."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _stop_without(sweeper_pid: int) -> None:
    while os.getppid() == sweeper_pid:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)  # the sweeper died: a rerun runs this trial again


def _dumps(obj: Any) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # the joblib launcher's joblib carries one
        from joblib.externals import cloudpickle
    return cloudpickle.dumps(obj)


class Submitit:
    """One submitit job per trial through the configured submitit launcher, polled."""

    def __init__(self, launcher: Any, config: DictConfig, slots: int) -> None:
        self.launcher, self.config, self.slots = launcher, config, slots
        self.executor = _submitit_executor(launcher)
        self.running: List[Tuple[Job, Any]] = []
        Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)

    def ready(self) -> None:
        pass

    def submit(self, job: Job) -> None:
        submitted = self.executor.submit(self.launcher, list(job.overrides), "hydra.sweep.dir",
                                         job.number, f"job_id_for_{job.number}",
                                         Singleton.get_state())
        log.info("trial %d: submitit job %s", job.number, submitted.job_id)
        self.running.append((job, submitted))

    def spread(self, nothing_to_start: bool) -> int:
        return 0  # a SLURM job has the cores it asked for; an idle one is another job's

    def wait(self, timeout_s: float) -> List[Ended]:
        deadline = time.monotonic() + timeout_s
        while self.running:
            done = [item for item in self.running if item[1].done()]
            if done:
                self.running = [item for item in self.running if item not in done]
                return [self._result(*item) for item in done]
            if time.monotonic() >= deadline:
                break
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return []

    @staticmethod
    def _result(job: Job, submitted: Any) -> Ended:
        try:
            return ended(job, submitted.result())
        except Exception as exc:  # the job died: submitit's FailedJobError, UncompletedJobError
            first = (str(exc).strip().splitlines() or [""])[0]
            return Ended(job, error=f"its job died: {type(exc).__name__}: {first}")

    def close(self, graceful: bool = True) -> None:
        pass


def _submitit_executor(launcher: Any) -> Any:
    """The executor hydra-submitit-launcher's ``launch`` builds (checked against 1.2.0)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
    from omegaconf import OmegaConf

    cluster = "slurm" if isinstance(launcher, SlurmLauncher) else "local"
    params = dict(launcher.params)
    init = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(cluster=cluster, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"{cluster}_{k}": v
                                  for k, v in params.items()})
    return executor


JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher."


def runner_for(launcher: Any, hydra_context: HydraContext, config: DictConfig,
               task_function: TaskFunction, slots: int, preload: Sequence[str] = (),
               lend_cores: bool = True) -> Any:
    """The runner for ``hydra.launcher`` (``launcher``: the instantiated, set-up launcher), or
    None for a launcher only batches can use. ``preload``: modules a worker process imports
    before its first job (the process pool's; SLURM jobs import in their own time);
    ``lend_cores``: the process pool's idle slots lend their cores in the final drain."""
    target = str(config.hydra.launcher.get("_target_", ""))
    if target == BASIC:
        return InProcess(hydra_context, config, task_function)
    if target == JOBLIB:
        return ProcessPool(hydra_context, config, task_function, slots, preload, lend_cores)
    if target.startswith(SUBMITIT):
        return Submitit(launcher, config, slots)
    return None
