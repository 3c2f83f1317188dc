"""optsweep's training loop as an Optuna trial: its epoch hook reports the objective after every
epoch through ``optsweep.sweep.trial`` (which works for any Hydra task) and turns a prune into
``EarlyStop("pruned")``, so that the run keeps its metrics so far and ends with status ``pruned``.
The sweeper records the trial as PRUNED because ``trial.report`` told it to stop.

Kept for ``optsweep.sweep.job`` until it calls ``optsweep.sweep.trial.report`` itself.
"""

from __future__ import annotations

import logging
from typing import Optional

from omegaconf import DictConfig

from optsweep.sweep import trial as optuna_trial
from optsweep.train import EarlyStop, EpochHook, objective_name

log = logging.getLogger(__name__)


def trial_hook(cfg: DictConfig) -> Optional[EpochHook]:
    """The epoch hook of an Optuna trial's job, or None when this job is not one."""
    trial = optuna_trial.current_trial()
    if trial is None:
        return None
    import optuna

    name = objective_name(cfg)

    def report(epoch: int, row: dict) -> None:
        # after the last epoch nothing is left to save: a prune would only discard a finished run
        try:
            optuna_trial.report(float(row[name]), epoch, may_prune=epoch < cfg.trainer.epochs)
        except optuna.TrialPruned as pruned:
            raise EarlyStop("pruned", f"Optuna {pruned} ({name})") from None

    log.info("Optuna trial %d of study %r: reporting %s after every epoch", trial.number,
             trial.study.study_name, name)
    return report
