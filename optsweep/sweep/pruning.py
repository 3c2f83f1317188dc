"""Pruning inside a Hydra Optuna sweep: how a job finds its trial and reports to it.

hydra-optuna-sweeper asks Optuna for trials in the launching process and only hands each job its
parameter overrides, so a job cannot report intermediate values. optsweep's sweeper adds three
``hydra.job.env_set`` overrides to each trial's job (the storage URL, the study name and the trial
number; Hydra sets them as environment variables around the task, in whichever process or machine
runs it). The job opens the same study, reports its objective after every epoch with
``trial.report`` and asks ``trial.should_prune()``; a pruned job ends with ``StopRun(Status.PRUNED)``,
keeps its metrics so far, and the sweeper then tells the study the trial was PRUNED.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from omegaconf import DictConfig

from optsweep.contract import Status, objective_name
from optsweep.train import EpochHook, StopRun

log = logging.getLogger(__name__)

TRIAL_ENV = "OPTSWEEP_OPTUNA_TRIAL"
STORAGE_ENV = "OPTSWEEP_OPTUNA_STORAGE"
STUDY_ENV = "OPTSWEEP_OPTUNA_STUDY"


def _quote(value: str) -> str:
    """A Hydra override value that survives the override grammar (URLs hold ':' '/' '@' '?')."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(storage: str, study_name: str, number: int) -> list[str]:
    """The overrides that tell trial ``number``'s job where its trial lives."""
    env = {TRIAL_ENV: str(number), STORAGE_ENV: storage, STUDY_ENV: study_name}
    return [f"++hydra.job.env_set.{key}={_quote(value)}" for key, value in env.items()]


def instantiate_pruner(pruner_cfg: Optional[DictConfig]):
    import optuna
    from hydra.utils import instantiate

    return instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()


def trial_hook(cfg: DictConfig) -> Optional[EpochHook]:
    """The epoch hook of an Optuna trial's job, or None when this job is not one."""
    number = os.environ.get(TRIAL_ENV)
    if number is None:
        return None
    import optuna
    from hydra.core.hydra_config import HydraConfig

    pruner = instantiate_pruner(HydraConfig.get().sweeper.get("pruner"))
    # RandomSampler: the job never samples, and TPE would scan the study's history when the
    # trial object is built
    from optsweep.sweep.storage import uncached

    study = uncached(optuna.load_study(study_name=os.environ[STUDY_ENV],
                                       storage=os.environ[STORAGE_ENV], pruner=pruner,
                                       sampler=optuna.samplers.RandomSampler()))
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(number))
    trial = optuna.trial.Trial(study, trial_id)
    name = objective_name(cfg)

    def report(epoch: int, row: dict) -> None:
        trial.report(float(row[name]), epoch)
        # after the last epoch nothing is left to save: a prune would only discard a finished run
        # (successive halving's rungs at 1, 3, 9 epochs check there when trainer.epochs=9)
        if epoch < cfg.trainer.epochs and trial.should_prune():
            raise StopRun(Status.PRUNED, f"Optuna trial {number} pruned by {type(pruner).__name__} "
                                      f"after epoch {epoch} ({name}={row[name]:.4f})")

    log.info("Optuna trial %s of study %r: reporting %s after every epoch", number,
             study.study_name, name)
    return report
