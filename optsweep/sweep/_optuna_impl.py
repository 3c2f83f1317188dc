"""The work behind ``hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper`` (see its docstring).

It reuses hydra-optuna-sweeper's parsing of ``hydra.sweeper.params`` and replaces its ``sweep``
loop: ask (under the study lock, up to the study's ``n_trials``), launch, tell from each job's
``summary.json`` (completed/diverged: COMPLETE with the finite objective; pruned: PRUNED; anything
else: FAIL).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import optuna
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import (OptunaSweeperImpl,
                                                      create_params_from_overrides)
from omegaconf import OmegaConf
from optuna.trial import TrialState

from optsweep import contract as runlog
from optsweep.sweep import storage as st
from optsweep.sweep.errors import SweepError
from optsweep.sweep.pruning import trial_overrides

log = logging.getLogger(__name__)

WORKER_ATTR = "optsweep_worker"  # system attribute: the host:pid that runs the trial
Claim = Tuple[int, Sequence[str]]  # (trial number, its parameter overrides)


class OptsweepOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(self, *args: Any, pruner: Any = None) -> None:
        super().__init__(*args)
        self.pruner = pruner  # used by the jobs (from the config); kept here for the log

    def sweep(self, arguments: List[str]) -> None:
        space, fixed = self._search_space(arguments)
        directions = self._get_directions()
        if len(directions) != 1:
            raise SweepError(f"hydra.sweeper.direction={directions} is invalid: optsweep trains "
                             "for one objective; expected maximize or minimize")
        url = str(self.storage) if self.storage else st.default_storage(self.sweep_dir)
        name = str(self.study_name or st.DEFAULT_STUDY_NAME)
        study = st.open_study(url, name, self.sampler, directions[0])
        log.info("Optuna study %r in %s: %d of %d trials exist; sampler %s, pruner %s", name,
                 st.shown(url), len(study.get_trials(deepcopy=False)), self.n_trials,
                 type(self.sampler).__name__, type(self.pruner).__name__)
        worker = st.worker_id()
        while True:
            with st.study_lock(url, name):
                batch = self._claim(study, space, fixed, worker)
            if not batch:
                break
            self._run_batch(study, batch, url, name)
        self._report(study, url)

    def _search_space(self, arguments: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """The distributions to sample and the fixed overrides, as hydra-optuna-sweeper reads them."""
        self._process_searchspace_config()
        space, fixed = create_params_from_overrides(
            self._parse_sweeper_params_config() + list(arguments))
        if self.search_space_distributions:
            space = {**self.search_space_distributions, **space}
        if isinstance(self.sampler, functools.partial) and \
                self.sampler.func is optuna.samplers.GridSampler:
            grid = {n: self._to_grid_sampler_choices(d) for n, d in space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        for param in fixed:
            space.pop(param, None)
        return space, fixed

    def _claim(self, study: optuna.Study, space: Dict[str, Any], fixed: Dict[str, Any],
               worker: str) -> List[Claim]:
        """Up to n_jobs trials for this worker: first those cut off with a dead worker of this
        host, then new ones while the study has fewer than n_trials. Call under the study lock."""
        batch: List[Claim] = []
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if len(batch) < self.n_jobs and st.is_dead_local_worker(
                    frozen.system_attrs.get(WORKER_ATTR)):
                study._storage.set_trial_system_attr(frozen._trial_id, WORKER_ATTR, worker)
                log.info("trial %d was cut off with its worker; running it again", frozen.number)
                batch.append((frozen.number, self._overrides(frozen.params, fixed)))
        while len(batch) < self.n_jobs and len(study.get_trials(deepcopy=False)) < self.n_trials:
            self._reseed(len(study.get_trials(deepcopy=False)))  # the number ask() will give
            trial = study.ask()
            trial.set_system_attr(WORKER_ATTR, worker)
            (overrides,) = self._configure_trials([trial], space, fixed)
            batch.append((trial.number, overrides))
        return batch

    def _reseed(self, number: int) -> None:
        """Seed the sampler with (seed + trial number): trial n gets the same draw whether the study
        ran in one go, was resumed, or is shared by workers, which would otherwise all start from
        the same seed and sample the same values."""
        seed = OmegaConf.select(self.config, "hydra.sweeper.sampler.seed")
        if seed is None:
            return
        rng = np.random.RandomState((int(seed) + number) % 2**32)
        for sampler in (self.sampler, getattr(self.sampler, "_random_sampler", None)):
            if sampler is not None and hasattr(sampler, "_rng"):  # TPE, its startup sampler, Random
                sampler._rng = rng

    @staticmethod
    def _overrides(params: Dict[str, Any], fixed: Dict[str, Any]) -> Sequence[str]:
        # written as _configure_trials writes them, so that a rerun trial has the same config
        return tuple(f"{name}={value}" for name, value in {**params, **fixed}.items())

    def _run_batch(self, study: optuna.Study, batch: List[Claim], url: str, name: str) -> None:
        jobs = [(*overrides, f"hydra.sweep.subdir={number}", *trial_overrides(url, name, number))
                for number, overrides in batch]
        returns = self.launcher.launch(jobs, initial_job_idx=batch[0][0])
        self.job_idx += len(returns)
        for (number, _), ret in zip(batch, returns):
            self._tell(study, number, ret)

    @staticmethod
    def _tell(study: optuna.Study, number: int, ret: JobReturn) -> None:
        job_dir = _job_dir(ret)
        summary = (runlog.read_summary(job_dir) if job_dir else None) or {}
        status, value = summary.get("status"), _finite_value(ret)
        if status == "pruned":
            study.tell(number, state=TrialState.PRUNED)  # Optuna keeps its last reported value
            log.info("trial %d pruned: %s", number, summary.get("error"))
        elif status in ("completed", "diverged") and value is not None:
            study.tell(number, value)  # diverged: a result (the worst finite value), not a failure
        else:
            study.tell(number, state=TrialState.FAIL)
            log.warning("trial %d failed (%s); recorded as FAIL", number,
                        summary.get("error") or f"status {status}, returned {value}")

    def _report(self, study: optuna.Study, url: str) -> None:
        trials = study.get_trials(deepcopy=False)
        pruned = [{"trial": t.number, "after_epoch": t.last_step}
                  for t in trials if t.state == TrialState.PRUNED]
        results: Dict[str, Any] = {
            "name": "optuna", "study_name": study.study_name, "storage": st.shown(url),
            "n_trials": len(trials), "states": dict(Counter(t.state.name for t in trials)),
            "pruned": pruned}
        if any(t.state == TrialState.COMPLETE for t in trials):
            results.update(best_trial=study.best_trial.number, best_params=study.best_params,
                           best_value=study.best_value)
        log.info("Optuna study %r: %d trials %s; pruned: %s; best: %s", study.study_name,
                 len(trials), results["states"],
                 ", ".join(f"#{p['trial']} after epoch {p['after_epoch']}" for p in pruned)
                 or "none", f"trial {results['best_trial']}, {results['best_params']}, value "
                 f"{results['best_value']:.4f}" if "best_trial" in results else "no completed trial")
        OmegaConf.save(OmegaConf.create(results), Path(self.sweep_dir) / "optimization_results.yaml")


def _job_dir(ret: JobReturn) -> Optional[Path]:
    try:
        return Path(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        return None


def _finite_value(ret: JobReturn) -> Optional[float]:
    """The job's objective if it is a finite number (Optuna's sweeper crashes on NaN)."""
    try:
        value = float(ret.return_value)
    except Exception:  # the job raised (JobReturn re-raises it) or returned no number
        return None
    return value if math.isfinite(value) else None
