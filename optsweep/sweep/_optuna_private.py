"""What optsweep needs from Optuna beyond its public API, in one place.

Checked against Optuna 4.9.0 and 5.0.0 (``tests/sweeper`` runs on both). Everything else in
``optsweep.sweep`` uses public names only: ``create_study``/``load_study``, ``Study.ask``
(``fixed_distributions``), ``Study.tell(..., skip_if_finished=True)``, ``Study.sampler``, the
storages' public methods (``get_study_id_from_name``, ``get_trial_id_from_study_id_trial_number``,
``set_trial_system_attr``, ``set_trial_user_attr``, ``get_trial``) and the journal classes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, List

import optuna

log = logging.getLogger(__name__)

# Study.stop()'s message when called outside optimize() (optuna/study/study.py, both versions)
_STOP_OUTSIDE_OPTIMIZE = "`Study.stop` is supposed to be invoked inside an objective function"


def rebuild_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """The ``Trial`` object of a trial asked by another process (the sweeper), so that this process
    (the job) can ``report`` and ``should_prune``. Optuna documents no public way to do this;
    ``Trial(study, trial_id)`` is the constructor ``Study.ask`` itself uses. It calls the study's
    sampler (``before_trial``): load ``study`` with a ``RandomSampler``, which does no work
    there."""
    return optuna.trial.Trial(study, trial_id)


def stale_trial_ids(storage: optuna.storages.BaseStorage, study_id: int) -> List[int]:
    """The RUNNING trials of an RDB storage opened with ``heartbeat_interval`` whose last heartbeat
    is older than its ``grace_period`` (database time). The public
    ``optuna.storages.fail_stale_trials`` reads the same and fails them at once, which leaves no
    moment to record why (a finished trial takes no user attribute); the sweeper records why, then
    fails each with the public ``set_trial_state_values``, as ``fail_stale_trials`` does."""
    if not isinstance(storage, optuna.storages.RDBStorage) or storage.heartbeat_interval is None:
        return []
    return list(storage._get_stale_trial_ids(study_id))


@contextlib.contextmanager
def grid_exhaustion_tolerated() -> Iterator[None]:
    """``GridSampler.after_trial`` calls ``study.stop()`` when the grid is exhausted, which raises
    ``RuntimeError`` outside ``Study.optimize`` (the ask-and-tell interface). ``Study.tell`` saves
    the trial's state before that (a ``finally``), so this error only means "grid done"."""
    try:
        yield
    except RuntimeError as exc:
        if _STOP_OUTSIDE_OPTIMIZE not in str(exc):
            raise
        log.info("the grid sampler has run every point of its grid")
