"""``hydra/sweeper=optsweep_optuna``: hydra-optuna-sweeper plus what its users ask for and do not get.

- pruning: ``hydra.sweeper.pruner`` (a config group: median, hyperband, successive_halving,
  threshold, nop) stops unpromising trials after any epoch (see ``optsweep.sweep.pruning``);
- resume: ``n_trials`` is the study's total, so rerunning a sweep finishes it instead of adding
  ``n_trials`` more, and a trial cut off with its worker is run again in its own directory, where
  training resumes from its last epoch checkpoint;
- several workers (processes or machines) on one study ask exactly ``n_trials`` trials together;
- a failed or non-finite result is a FAIL trial, never a crash; a storage that cannot be opened is
  one clear error before any job starts.

Each trial's job directory is ``<hydra.sweep.dir>/<trial number>``.

Hydra only instantiates sweepers defined under the ``hydra_plugins`` package, and imports every
module there at start-up: this module stays small and imports optuna and torch lazily; the work is
in ``optsweep.sweep._optuna_impl``.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING, DictConfig


@dataclass
class OptsweepOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    # an optuna.pruners.* node from conf/hydra/sweeper/pruner/ (nop: never prune); MISSING, not
    # None, so that the group's choice is not overwritten by this schema's own value
    pruner: Any = MISSING
    # hydra-optuna-sweeper runs 2 trials per batch by default; with the basic launcher they run
    # one after the other anyway, and the second is sampled without the first's result
    n_jobs: int = 1


def register_sweeper_configs() -> None:
    ConfigStore.instance().store(group="hydra/sweeper", name="optsweep_optuna",
                                 node=OptsweepOptunaSweeperConf, provider="optsweep")


class OptunaSweeper(Sweeper):
    """Thin public class over ``optsweep.sweep._optuna_impl`` (imported lazily: it imports optuna)."""

    def __init__(self, sampler: Any, direction: Any, storage: Optional[Any],
                 study_name: Optional[str], n_trials: int, n_jobs: int, max_failure_rate: float,
                 search_space: Optional[DictConfig], custom_search_space: Optional[str],
                 params: Optional[DictConfig], pruner: Optional[DictConfig] = None) -> None:
        from optsweep.sweep._optuna_impl import OptsweepOptunaSweeperImpl

        self.sweeper = OptsweepOptunaSweeperImpl(
            sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
            search_space, custom_search_space, params, pruner=pruner)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.sweeper.sweep(arguments)


register_sweeper_configs()  # as Hydra's own plugins do: discovery imports this module
