"""Submit one job, poll for ended ones: how the sweeper's slots run trials without a batch barrier.

Hydra's ``Launcher.launch`` runs a batch and returns when all of it is done, and it is not safe to
call from several threads (the joblib launcher shares one process-wide loky executor; Hydra's
per-job state, HydraConfig, JobRuntime, logging, the working directory and ``env_set``'s
``os.environ``, is global to a process). So the sweeper runs jobs through a runner of its own,
chosen from ``hydra.launcher``'s ``_target_``, each job run as Hydra's own launchers run one
(``hydra.core.utils.run_job`` on the job's sweep config) where the launcher would run it:

- the basic launcher: ``InProcess``, one job at a time in this process, as the basic launcher does;
- the joblib launcher: ``ProcessPool`` (``optsweep.sweep.process_pool``), one worker process per
  slot, spawned once and reused job after job, as loky starts and reuses its workers;
- submitit's launchers (``hydra/launcher=submitit_slurm``, ``submitit_local``): ``Submitit``, one
  ``executor.submit`` per job of the launcher itself, the callable its ``launch`` maps over a job
  array, polled with ``done()``.

Any other launcher: ``launchers.runner_for`` returns None and the sweeper launches batches
through it. Every runner is a ``Runner``; each runs the jobs of one sweep, or of several
(``Job.sweep``: the benchmark's one pool runs every study, confirmation and defaults sweep through
one runner). Ray Tune and Optuna's own ``n_jobs`` (``optuna/study/_optimize.py``: a thread pool
that submits a new trial whenever a future completes, ``wait(FIRST_COMPLETED)``) schedule the
same way.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often submitit's jobs are asked whether they are done (it caches sacct calls)


@dataclass(frozen=True, eq=False)
class Sweep:
    """What a job runs in: its sweep's Hydra context, config (with ``hydra``) and task function;
    ``key`` names it among the sweeps one runner runs (its ``hydra.sweep.dir``)."""
    key: str
    hydra_context: HydraContext
    config: DictConfig
    task_function: TaskFunction


class Job(NamedTuple):
    number: int  # the trial's number: hydra.job.num
    overrides: Tuple[str, ...]
    shown: str  # what the log says the job runs: the trial's parameters
    sweep: Optional[Sweep] = None  # the sweep it belongs to; None: the runner's own


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


class Runner(Protocol):
    """Runs jobs in ``slots`` places at once; the slot loops (``optsweep.sweep.slots``) drive it:
    ``ready`` once before the first ``submit``, ``wait`` for ends, ``lend`` each round (the idle
    slots' cores lent to the running jobs when nothing is left to start: how many are lent),
    ``close`` at the end."""

    slots: int

    def ready(self) -> None: ...

    def submit(self, job: Job) -> None: ...

    def lend(self, nothing_to_start: bool) -> int: ...

    def wait(self, timeout_s: float) -> List[Ended]: ...

    def close(self, graceful: bool = True) -> None: ...


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

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.queued: List[Job] = []

    def ready(self) -> None:
        pass

    def submit(self, job: Job) -> None:
        self.queued.append(job)

    def lend(self, nothing_to_start: bool) -> int:
        return 0  # one slot: none ever idles beside a running job

    def wait(self, timeout_s: float) -> List[Ended]:
        if not self.queued:
            return []
        job = self.queued.pop(0)
        sweep = job.sweep or self.sweep
        ret = run_one(sweep.hydra_context, sweep.config, sweep.task_function, job.number,
                      job.overrides)
        # run_job configured logging for its job: give the sweeper its own back, as the basic
        # launcher does before each batch
        configure_log(self.sweep.config.hydra.hydra_logging, self.sweep.config.hydra.verbose)
        return [ended(job, ret)]

    def close(self, graceful: bool = True) -> None:
        pass


class Submitit:
    """One submitit job per trial through the configured submitit launcher, polled (a job of
    another sweep through that sweep's own launcher: its folder, its resources)."""

    def __init__(self, launcher: Any, sweep: Sweep, slots: int) -> None:
        self.sweep, self.slots = sweep, slots
        self.executors: Dict[str, Tuple[Any, Any]] = {
            sweep.key: (launcher, _submitit_executor(launcher))}
        self.running: List[Tuple[Job, Any]] = []

    def ready(self) -> None:
        pass

    def submit(self, job: Job) -> None:
        launcher, executor = self._executor(job.sweep or self.sweep)
        submitted = executor.submit(launcher, list(job.overrides), "hydra.sweep.dir", job.number,
                                    f"job_id_for_{job.number}", Singleton.get_state())
        log.info("trial %d: submitit job %s", job.number, submitted.job_id)
        self.running.append((job, submitted))

    def _executor(self, sweep: Sweep) -> Tuple[Any, Any]:
        if sweep.key not in self.executors:
            from hydra.core.plugins import Plugins

            launcher = Plugins.instance().instantiate_launcher(
                config=sweep.config, hydra_context=sweep.hydra_context,
                task_function=sweep.task_function)
            self.executors[sweep.key] = (launcher, _submitit_executor(launcher))
        Path(str(sweep.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        return self.executors[sweep.key]

    def lend(self, nothing_to_start: bool) -> int:
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
