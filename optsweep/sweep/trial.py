"""Pruning for any Hydra task in an ``optsweep_optuna`` sweep: report each step, stop when told.

    from optsweep.sweep.trial import report

    @hydra.main(...)
    def main(cfg) -> float:
        for epoch in range(1, cfg.epochs + 1):
            loss = train_one_epoch(...)
            report(loss, epoch)  # raises optuna.TrialPruned when the pruner says stop
        return loss

The sweeper asks Optuna for trials in the launching process and passes three ``hydra.job.env_set``
overrides to each trial's job: the storage, the study name and the trial number. Hydra sets them as
environment variables around the task, in whichever process or machine runs it (basic, joblib or
submitit launcher). ``report`` opens the same study there, records the value at that step, asks the
study's pruner (``hydra.sweeper.pruner``) and raises ``optuna.TrialPruned`` to stop; the sweeper
then records the trial as PRUNED with its last reported value. A task that catches ``TrialPruned``
and returns anyway is still recorded PRUNED: it was told to stop.

While the task runs, a daemon thread records that the job is alive (``BeatingTask``,
``optsweep.lease``): a sweeper on any host then tells a dead job's trial from a live one.

At a sweep's end, when nothing is left to start, a process pool's idle slots can lend their cores
to the trials still running (``hydra.sweeper.lend_cores``): a task that wants them registers
``on_lent_cores(callback)`` (optsweep's jobs set torch's threads with it).

Outside an Optuna sweep ``report`` does nothing and ``current_trial`` returns None, so a task runs
unchanged on its own. Multi-objective studies cannot prune (Optuna's ``Trial.report`` refuses
them): ``report`` warns once and does nothing there.

Torch-free; optuna is imported only inside a sweep's job.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Tuple

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

STORAGE_ENV = "OPTSWEEP_OPTUNA_STORAGE"
STUDY_ENV = "OPTSWEEP_OPTUNA_STUDY"
TRIAL_ENV = "OPTSWEEP_OPTUNA_TRIAL"
HEARTBEAT_ENV = "OPTSWEEP_OPTUNA_HEARTBEAT_S"  # the job beats every this many seconds
GRACE_ENV = "OPTSWEEP_OPTUNA_GRACE_S"  # ... and is dead after this many seconds of silence
PRUNED_ATTR = "optsweep_pruned_at_step"  # system attribute: report() told the task to stop
# set in a slot's worker process (optsweep.sweep.process_pool.ProcessPool): its slot, and how many
# slots its pool has (the jobs that share this machine's cores and GPUs)
SLOT_ENV, SLOTS_ENV = "OPTSWEEP_SLOT", "OPTSWEEP_SLOTS"

__all__ = ["report", "current_trial", "on_lent_cores"]


class _JobTrial(NamedTuple):
    trial: "optuna.Trial"
    storage: "optuna.storages.BaseStorage"
    trial_id: int


# ((storage, study, number), this process's handle on that trial or None when multi-objective):
# only the current job's, so that a process running many jobs one by one holds one storage
_current: List[Tuple[Tuple[str, str, str], Optional[_JobTrial]]] = []


def report(value: float, step: int, *, may_prune: bool = True) -> None:
    """Record ``value`` at ``step`` for this job's trial and raise ``optuna.TrialPruned`` when the
    sweep's pruner says the trial should stop (never when ``may_prune`` is False: after the last
    step, say, where stopping saves nothing). Does nothing outside an Optuna sweep."""
    job = _job()
    if job is None:
        return
    import optuna

    value, step = float(value), int(step)
    job.trial.report(value, step)
    if may_prune and job.trial.should_prune():
        job.storage.set_trial_system_attr(job.trial_id, PRUNED_ATTR, step)
        raise optuna.TrialPruned(f"trial {job.trial.number} pruned at step {step} (value "
                                 f"{value:.6g}) by {type(job.trial.study.pruner).__name__}")


def current_trial() -> Optional["optuna.Trial"]:
    """This job's ``optuna.Trial`` (``number``, ``params``, ``report``, ``should_prune``), or None
    outside an Optuna sweep and in a multi-objective study."""
    job = _job()
    return None if job is None else job.trial


# the current job's callback for lent cores, and the last cores lent (cores lent before the job
# registered is handed over when it does); ProcessPool's workers reset both before each job
_on_lent: List[Callable[[int], None]] = []
_lent: List[int] = []


def on_lent_cores(callback: Callable[[int], None]) -> None:
    """Let the sweeper lend this job the cores of idle slots: when a sweep has nothing left to
    start and some of its process pool's slots idle (the final drain), ``callback(cores)`` is
    called in the job's main thread, between two Python statements, with the cores this job may
    use now (the machine's over the trials still running), and again with the slot's own share if
    a trial starts after all. For the current job only; never called outside a pool's worker or
    with ``hydra.sweeper.lend_cores=false``. A task whose thread count is the user's choice does
    not register."""
    _on_lent[:] = [callback]
    if _lent:
        callback(_lent[-1])


def lend_cores(cores: int) -> None:
    """A pool worker's signal handler: the sweeper lends this job ``cores`` cores."""
    _lent[:] = [int(cores)]
    for callback in list(_on_lent):
        callback(int(cores))


def forget_cores() -> None:
    """A pool worker, before each job: the last job's callback and cores are not the next's."""
    _on_lent.clear()
    _lent.clear()


def slot(default: int) -> int:
    """The sweeper's slot this job runs in, or ``default`` outside a slot's worker process: a
    freed slot's GPU gets the next trial, so jobs are placed by slot, not by trial number."""
    return int(os.environ.get(SLOT_ENV, default))


def pool_slots() -> Optional[int]:
    """How many slots the process pool running this job has (None outside a pool's worker)."""
    slots = os.environ.get(SLOTS_ENV)
    return int(slots) if slots else None


def job_overrides(storage: str, study_name: str, number: int, heartbeat_s: Optional[int] = None,
                  grace_s: Optional[float] = None) -> List[str]:
    """The overrides that tell trial ``number``'s job where its trial lives and how often it beats
    (used by the sweeper)."""
    env = {STORAGE_ENV: storage, STUDY_ENV: study_name, TRIAL_ENV: str(number)}
    if heartbeat_s:
        env.update({HEARTBEAT_ENV: str(heartbeat_s), GRACE_ENV: str(grace_s)})
    return [f"++hydra.job.env_set.{key}={_quote(value)}" for key, value in env.items()]


class Pruned(NamedTuple):
    """What a job whose task raised ``optuna.TrialPruned`` returns to the sweeper: a pruned trial
    is an answer, not an error, so Hydra neither logs "Error executing job" nor fails the job."""
    message: str


class BeatingTask:
    """The task function the sweeper gives its launcher: the task, while a daemon thread records
    that its trial's job is alive (``optsweep.lease.Renewal``), in whichever process or machine
    the launcher runs it (Hydra sets the job's environment around the task); a prune is returned
    as ``Pruned``. Picklable as long as the task is: joblib and submitit pickle it."""

    def __init__(self, task_function: Callable[[Any], Any]) -> None:
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        try:
            return self._beating(cfg)
        except Exception as exc:
            optuna = sys.modules.get("optuna")  # a task that raised TrialPruned imported it
            if optuna is not None and isinstance(exc, optuna.TrialPruned):
                return Pruned(str(exc))
            raise

    def _beating(self, cfg: Any) -> Any:
        env = os.environ
        key = _trial_key()
        if key is None or not env.get(HEARTBEAT_ENV):
            return self.task_function(cfg)
        from hydra.core.hydra_config import HydraConfig

        from optsweep.lease import Renewal
        from optsweep.sweep.storage import job_beat

        url, study_name, number = key
        beat = job_beat(url, study_name, int(number), Path(HydraConfig.get().runtime.output_dir),
                        float(env.get(GRACE_ENV) or 0))
        with Renewal(beat, float(env[HEARTBEAT_ENV]), name=f"heartbeat of trial {number}"):
            return self.task_function(cfg)


def _quote(value: str) -> str:
    """A Hydra override value that survives the override grammar (URLs hold ':' '/' '@' '?')."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _trial_key() -> Optional[Tuple[str, str, str]]:
    """(storage, study, trial number) of the trial whose job this process runs; None outside."""
    url, study_name, number = (os.environ.get(name) for name in (STORAGE_ENV, STUDY_ENV, TRIAL_ENV))
    if url is None or study_name is None or number is None:
        return None
    return url, study_name, number


def _job() -> Optional[_JobTrial]:
    key = _trial_key()
    if key is None:
        return None
    if not _current or _current[0][0] != key:  # once per job: report() runs after every step
        _current[:] = [(key, _open(*key))]
    return _current[0][1]


def _open(url: str, study_name: str, number: str) -> Optional[_JobTrial]:
    import optuna

    from optsweep.sweep import _optuna_private
    from optsweep.sweep.storage import job_storage

    storage = job_storage(url)
    # RandomSampler: this process never samples, and rebuilding a trial calls the sampler
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=_pruner(),
                              sampler=optuna.samplers.RandomSampler())
    if len(study.directions) > 1:
        message = (f"study {study_name!r} has {len(study.directions)} objectives: Optuna does not "
                   "prune multi-objective studies, so optsweep.sweep.trial.report does nothing")
        log.warning(message)
        warnings.warn(message, stacklevel=4)
        return None
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study_name), int(number))
    return _JobTrial(_optuna_private.rebuild_trial(study, trial_id), storage, trial_id)


def _pruner() -> "optuna.pruners.BasePruner":
    """``hydra.sweeper.pruner`` of the sweep this job belongs to (Hydra passes its config to every
    job, in any launcher); Optuna's NopPruner where there is none."""
    import optuna
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    node = HydraConfig.get().sweeper.get("pruner") if HydraConfig.initialized() else None
    return instantiate(node) if node else optuna.pruners.NopPruner()
