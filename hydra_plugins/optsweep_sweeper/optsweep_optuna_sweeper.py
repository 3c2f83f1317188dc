"""``hydra/sweeper=optsweep_optuna``: an Optuna sweeper for any Hydra app, on Optuna's public API.

It reads hydra-optuna-sweeper 1.3's configuration with the same meaning (``sampler``, ``direction``,
``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``,
``custom_search_space``, the deprecated ``search_space``) and adds:

- pruning: ``hydra.sweeper.pruner`` (a config group registered here: median, percentile,
  successive_halving, hyperband, threshold, patient, wilcoxon, nop); a task reports with
  ``optsweep.sweep.trial.report(value, step)``;
- trial 0 at the defaults: ``enqueue_defaults`` queues every searched key at its configured value;
- resume: ``n_trials`` is the study's total (default storage: SQLite in the sweep directory), and a
  trial cut off with its worker is run again in its own directory;
- dead workers on any host: a trial whose job stopped beating (``heartbeat_interval``,
  ``grace_period``, ``dead_after_s``) is failed and its setting re-run once in its directory;
- crashes: a trial whose task raised is re-run in its directory up to ``crash_retries`` times;
- slots, not batches: up to ``n_jobs`` trials run at once and each trial's end starts the next one
  at once (basic, joblib and submitit launchers; any other launcher runs batches);
- several workers on one study ask exactly ``n_trials`` trials together;
- a failed, pruned or non-finite result is recorded as such, never a crash; a storage that cannot be
  opened is one clear error before any job starts.

Each trial's job directory is ``<hydra.sweep.dir>/<trial number>``.

Hydra imports every module under ``hydra_plugins`` at start-up: this one stays small and imports
neither optuna nor torch; the work is in ``optsweep.sweep._optuna_impl``.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
from typing import Any, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from optsweep.sweep.optuna_config import PRUNERS, SAMPLERS, OptsweepOptunaSweeperConf

PROVIDER = "optsweep_optuna_sweeper"
_CONF = OptsweepOptunaSweeperConf  # the schema's defaults, one home


def register_configs() -> None:
    """The sweeper and its sampler and pruner groups, in Hydra's ConfigStore.

    The sampler group has to be ``hydra/sweeper/sampler`` (a user's ``hydra/sweeper/sampler=grid``
    must keep working), the same group hydra-optuna-sweeper fills. ConfigStore keeps one node per
    name, the last stored: were both plugins importable, the one Hydra scans last would serve
    ``tpe``, ``random`` and the other shared names for both sweepers. hydra-optuna-sweeper 1.3
    requires optuna<3 and optsweep optuna>=4.9, so pip never installs both in one environment;
    should it happen anyway, our sweeper instantiates whatever node it gets with Optuna's current
    classes, and a stale key is an error that names it. Our own sweeper name and the pruner group
    do not clash (hydra-optuna-sweeper has ``hydra/sweeper/optuna`` and no pruner group).
    """
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optsweep_optuna", node=OptsweepOptunaSweeperConf,
                provider=PROVIDER)
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)


class OptunaSweeper(Sweeper):
    """Thin public class over ``optsweep.sweep._optuna_impl`` (imported lazily: it needs optuna)."""

    def __init__(self, sampler: Any, direction: Any, storage: Optional[str],
                 study_name: Optional[str], n_trials: int, n_jobs: int, max_failure_rate: float,
                 search_space: Optional[DictConfig], custom_search_space: Optional[str],
                 params: Optional[DictConfig], pruner: Any = None,
                 heartbeat_interval: Optional[int] = _CONF.heartbeat_interval,
                 grace_period: int = _CONF.grace_period,
                 dead_after_s: float = _CONF.dead_after_s,
                 schedule: str = _CONF.schedule, preload: Sequence[str] = (),
                 lend_cores: bool = _CONF.lend_cores,
                 enqueue_defaults: bool = _CONF.enqueue_defaults,
                 crash_retries: int = _CONF.crash_retries) -> None:
        from optsweep.sweep._optuna_impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(
            sampler=sampler, direction=direction, storage=storage, study_name=study_name,
            n_trials=n_trials, n_jobs=n_jobs, max_failure_rate=max_failure_rate,
            search_space=search_space, custom_search_space=custom_search_space, params=params,
            pruner=pruner, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            dead_after_s=dead_after_s, schedule=schedule, preload=preload,
            lend_cores=lend_cores, enqueue_defaults=enqueue_defaults,
            crash_retries=crash_retries)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.sweeper.sweep(arguments)

    def open(self, arguments: List[str]) -> Any:
        """The study, checked and opened, for a slot loop of another's (``optsweep.benchmark``'s
        one pool runs every study's trials through one runner): its claims, jobs and ends, and
        ``run.sweeper.write_results(run, None)`` at its end. Raises SweepError for bad input."""
        return self.sweeper.open(arguments)


register_configs()  # as Hydra's own plugins do: discovery imports this module
