"""The schema of ``hydra/sweeper=optsweep_optuna``: hydra-optuna-sweeper 1.3's keys with the same
meaning, plus a ``pruner`` group. Registered in Hydra's ConfigStore by the plugin module
(``hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper``) and by nothing else.

Sampler and pruner nodes are instantiated by the sweeper itself, not by Hydra (the sweeper node says
``_recursive_: false``): a sampler is built afresh for every trial with ``seed + trial number``
(grid and QMC keep ``seed``: it fixes their order), and
the pruner is rebuilt in each job. A sampler key left ``None`` is not passed, so Optuna's own
default applies: several defaults differ between Optuna 4.9 and 5.0 (TPE's ``constant_liar`` is
False in 4.9, True in 5.0), and TPE's ``consider_prior`` family is deprecated in both but kept
here so that an existing hydra-optuna-sweeper block still composes.

No ``from __future__ import annotations``: OmegaConf reads these annotations as types.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

SWEEPER_TARGET = "hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper.OptunaSweeper"


# --- samplers (hydra/sweeper/sampler=NAME) ------------------------------------------------------

@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    # None: Optuna's default (False in 4.9; in 5.0 True for one objective, False for several)
    multivariate: Optional[bool] = None
    group: bool = False
    constant_liar: Optional[bool] = None  # None: Optuna's default (False in 4.9, True in 5.0)
    # deprecated by Optuna (4.4/4.9), accepted for old configs; None = not passed
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class GridSamplerConf:
    # the grid is hydra.sweeper.params (choice or range); n_trials is capped at the grid's size;
    # the seed shuffles the grid's order and is the same for every trial (trial n: point n)
    _target_: str = "optuna.samplers.GridSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConf:
    # needs the cmaes package: pip install 'optsweep[cmaes]'
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: Optional[int] = None
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    independent_sampler: Optional[Any] = None
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[str] = None  # deprecated by Optuna
    popsize: Optional[int] = None
    inc_popsize: Optional[int] = None  # deprecated by Optuna (1.3's node said 2)
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    source_trials: Optional[Any] = None


@dataclass
class NSGAIISamplerConf:
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover: Optional[Any] = None  # None: Optuna's UniformCrossover
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None


@dataclass
class NSGAIIISamplerConf(NSGAIISamplerConf):
    _target_: str = "optuna.samplers.NSGAIIISampler"
    dividing_parameter: int = 3


@dataclass
class QMCSamplerConf:
    # the seed scrambles the sequence and is the same for every trial (the study keeps its position)
    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = False
    independent_sampler: Optional[Any] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConf:
    # Optuna's Gaussian process sampler imports torch (and scipy) when it first samples
    _target_: str = "optuna.samplers.GPSampler"
    seed: Optional[int] = None
    independent_sampler: Optional[Any] = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    constraints_func: Optional[Any] = None
    warn_independent_sampling: bool = True


@dataclass
class MOTPESamplerConf:
    # Optuna removed MOTPESampler (TPESampler handles several objectives); kept so that an old
    # config gets one clear error from the sweeper instead of an import error
    _target_: str = "optuna.samplers.MOTPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    n_ehvi_candidates: int = 24
    consider_prior: bool = True
    prior_weight: float = 1.0
    consider_magic_clip: bool = True
    consider_endpoints: bool = False


SAMPLERS = {"tpe": TPESamplerConf, "random": RandomSamplerConf, "grid": GridSamplerConf,
            "cmaes": CmaEsSamplerConf, "nsgaii": NSGAIISamplerConf, "nsgaiii": NSGAIIISamplerConf,
            "qmc": QMCSamplerConf, "gp": GPSamplerConf, "motpe": MOTPESamplerConf}


# --- pruners (hydra/sweeper/pruner=NAME): Optuna's defaults, written out ------------------------
# A step is whatever the task passes to optsweep.sweep.trial.report (optsweep's training: the
# epoch).

@dataclass
class MedianPrunerConf:
    # stop a trial whose value at a step is worse than the median of earlier trials at that step
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials that always run to the end
    n_warmup_steps: int = 0  # steps below this are never pruned
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConf(MedianPrunerConf):
    # the median pruner is this one at percentile 50
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = MISSING  # e.g. 25.0: keep trials in the best quarter


@dataclass
class SuccessiveHalvingPrunerConf:
    # at steps min_resource * reduction_factor**k a trial goes on only if in the best 1/rf
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"  # int, or auto: from the first finished trial's steps
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # int, or auto: the longest finished trial's steps
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ThresholdPrunerConf:
    # stop a trial whose value leaves [lower, upper]; set one of them (Optuna requires it)
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class PatientPrunerConf:
    # prune only after `patience` steps without improvement, and then only if wrapped_pruner says so
    # (wrapped_pruner: a node with a _target_, or null to prune on patience alone)
    _target_: str = "optuna.pruners.PatientPruner"
    wrapped_pruner: Optional[Any] = None
    patience: int = MISSING
    min_delta: float = 0.0


@dataclass
class WilcoxonPrunerConf:
    # for tasks whose steps are instances (folds, problems), not epochs
    _target_: str = "optuna.pruners.WilcoxonPruner"
    p_threshold: float = 0.1
    n_startup_steps: int = 2


@dataclass
class NopPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"


PRUNERS = {"median": MedianPrunerConf, "percentile": PercentilePrunerConf,
           "successive_halving": SuccessiveHalvingPrunerConf, "hyperband": HyperbandPrunerConf,
           "threshold": ThresholdPrunerConf, "patient": PatientPrunerConf,
           "wilcoxon": WilcoxonPrunerConf, "nop": NopPrunerConf}


# --- the sweeper (hydra/sweeper=optsweep_optuna) -------------------------------------------------

@dataclass
class OptsweepOptunaSweeperConf:
    _target_: str = SWEEPER_TARGET
    # the sweeper builds sampler and pruner itself (see the module docstring)
    _recursive_: bool = False
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    # MISSING, not None: the group's choice must not be overwritten by this schema's own value
    sampler: Any = MISSING
    pruner: Any = MISSING
    # minimize or maximize; a list of them makes a multi-objective study
    direction: Any = "minimize"
    # None: sqlite:///<hydra.sweep.dir>/optuna.db; journal:PATH for Optuna's JournalStorage on a
    # file
    storage: Optional[str] = None
    # None: "optsweep" (a named study, so that a rerun of the command finishes it)
    study_name: Optional[str] = None
    # the study's total: a rerun finishes these, it does not add n_trials more
    n_trials: int = 20
    # trials run at once: slots, each refilled as soon as its trial ends (set it to the
    # launcher's parallel jobs: hydra.launcher.n_jobs with joblib)
    n_jobs: int = 2
    # slots (a trial's end starts the next) or batches (n_jobs trials at a time, each batch waiting
    # for its slowest, as hydra-optuna-sweeper 1.3); a launcher other than basic, joblib and
    # submitit always runs batches
    schedule: str = "slots"
    # modules each slot's worker process imports when it starts, before its first trial (as
    # multiprocessing's forkserver preload): a trial's time is then its task's, not the imports'
    # (process pool only; optsweep's sweep presets name optsweep.sweep.job, which imports torch)
    preload: List[str] = field(default_factory=list)
    # the final drain (nothing left to start): a process pool's idle slots lend their cores to the
    # trials still running, whose jobs take them with optsweep.sweep.trial.on_lent_cores (optsweep's
    # set torch's threads: a thread count other than the slot's share rounds sums differently)
    lend_cores: bool = True
    # a trial whose task raised (a crash, not a divergence, a prune or a dead worker) runs again in
    # its job directory up to this many times, then counts as failed: every setting gets as many
    # chances, and a study ends with n_trials trials that ended on their own merit where it can
    crash_retries: int = 1
    # the sweep stops when more than this fraction of the last n_jobs finished trials failed
    # (0.0: any failure)
    max_failure_rate: float = 0.0
    # deprecated (Hydra 1.1's form); use params
    search_space: Optional[Dict[str, Any]] = None
    # key: choice(...) | range(...) | interval(...) | tag(log, interval(...)) | a fixed value
    params: Optional[Dict[str, Any]] = None
    # dotted path of a function (cfg, trial) -> None that suggests more parameters
    custom_search_space: Optional[str] = None
    # a new study's trial 0: every key of params at its value in the composed config (an
    # optimizer's defaults), enqueued once, under the study lock, before the first ask; a value its
    # distribution cannot hold (0 in a log range) is left out, sampled, and said in the log and in
    # optimization_results.yaml (defaults.left_out)
    enqueue_defaults: bool = False
    # dead workers (optsweep.lease): each job beats every heartbeat_interval seconds
    # (null: no beat; then only this host's dead processes are noticed); a RUNNING trial silent for
    # grace_period seconds is failed and its setting re-run once in its own directory
    heartbeat_interval: Optional[int] = 30
    grace_period: int = 120
    # journal storage: a trial whose job never beat (still queued, or lost before it started) is
    # dead this long after it was claimed (a day: SLURM queues can be long)
    dead_after_s: float = 86400.0
