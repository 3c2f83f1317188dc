"""Typed schemas for every config group, registered in Hydra's ConfigStore, and the checks that
types cannot express (ranges, choices), run before any data is read or any model is built.

Each YAML in ``conf/<group>/`` names its schema first in its defaults list (``- cosine_schema``),
so a misspelt key or a value of the wrong type fails at composition with Hydra's message naming
the key. The optimizer group has no schema: its keys are the ``_target_`` class's own arguments,
checked against the class's signature (``optsweep.optim.check``), so adding an optimizer is adding
a file.

Torch-free, so that composing a config (the analysis, ``confirm``, ``export``, a sweeper) loads no
torch: the checks that need the dataset readers, the model zoo or the optimizer's class are
``train.check_config``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from optsweep import contract
from optsweep.errors import ConfigError

# --- schemas ------------------------------------------------------------------------------------
# Types only: every value is written once, in the group's YAML file (conf/<group>/<name>.yaml),
# which names its schema first in its defaults list. A key that a YAML file leaves out is MISSING,
# and tests/test_config.py composes every option and fails on any.


@dataclass
class ModelConf:
    name: str = MISSING
    weights: Optional[str] = MISSING
    freeze_backbone: bool = MISSING
    cifar_stem: bool = MISSING


@dataclass
class DataConf:
    name: str = MISSING
    root: str = MISSING
    download: bool = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    val_fraction: float = MISSING
    augment: bool = MISSING
    image_size: int = MISSING
    train_limit: Optional[int] = MISSING
    test_limit: Optional[int] = MISSING
    mean: List[float] = MISSING
    std: List[float] = MISSING


@dataclass
class TrainerConf:
    epochs: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    objective: str = MISSING
    progress: bool = MISSING
    channels_last: bool = MISSING
    fast_path: bool = MISSING
    precision: str = MISSING
    compile: bool = MISSING
    num_threads: Optional[int] = MISSING
    max_loss: float = MISSING
    resume: bool = MISSING
    keep_checkpoint: bool = MISSING
    early_stop_patience: Optional[int] = MISSING  # epochs
    keep_best: bool = MISSING


@dataclass
class TensorBoardConf:
    flush_secs: int = MISSING


@dataclass
class MlflowConf:
    tracking_uri: str = MISSING
    experiment: Optional[str] = MISSING
    http_retries: int = MISSING
    http_timeout_s: int = MISSING


@dataclass
class WandbConf:
    project: str = MISSING
    entity: Optional[str] = MISSING
    mode: str = MISSING


# conf/logger/<name>.yaml; optsweep.tracking holds the tracker behind each name.
LOGGER_SCHEMAS: Dict[str, type] = {"tensorboard": TensorBoardConf, "mlflow": MlflowConf,
                                   "wandb": WandbConf}


STEP_PER = ("batch", "epoch")  # when a schedule steps (optsweep.schedule)


@dataclass
class SchedulerConf:
    _target_: Optional[str] = MISSING  # null: a constant lr
    _partial_: bool = MISSING
    step_per: str = MISSING  # batch | epoch


@dataclass
class StepConf(SchedulerConf):
    step_size: int = MISSING  # epochs
    gamma: float = MISSING


@dataclass
class MultiStepConf(SchedulerConf):
    milestones: List[int] = MISSING  # epochs
    gamma: float = MISSING


@dataclass
class ExponentialConf(SchedulerConf):
    gamma: float = MISSING  # per epoch


@dataclass
class CosineConf(SchedulerConf):
    T_max: int = MISSING  # epochs
    eta_min: float = MISSING


@dataclass
class WarmupCosineConf(CosineConf):
    warmup_epochs: int = MISSING
    start_factor: float = MISSING


@dataclass
class OneCycleConf(SchedulerConf):
    pct_start: float = MISSING
    anneal_strategy: str = MISSING
    cycle_momentum: bool = MISSING
    base_momentum: float = MISSING
    max_momentum: float = MISSING
    div_factor: float = MISSING
    final_div_factor: float = MISSING
    three_phase: bool = MISSING


@dataclass
class PlateauConf(SchedulerConf):
    factor: float = MISSING
    patience: int = MISSING  # epochs
    threshold: float = MISSING
    threshold_mode: str = MISSING
    cooldown: int = MISSING  # epochs
    min_lr: float = MISSING
    eps: float = MISSING


@dataclass
class SimulatedOptimizerConf:
    """One optimizer of the simulated workload (conf/workload/simulated.yaml says what each
    means)."""

    peak: float = MISSING  # expected final validation accuracy at the best setting
    lr: float = MISSING  # the effective lr of the peak (optsweep.simulate.model.effective_lr)
    width: float = MISSING  # decades of lr at which the margin over chance has halved
    diverge_lr: float = MISSING  # effective lr above which a run diverges
    test_gap: float = MISSING  # test minus validation accuracy
    speed: float = MISSING  # epochs
    step_cost: float = MISSING  # relative cost of one step (seconds per epoch)


@dataclass
class SimulateConf:
    classes: int = MISSING
    optimizers: Dict[str, SimulatedOptimizerConf] = MISSING
    seed_shared_sd: float = MISSING
    seed_sd: float = MISSING
    diverge_sd: float = MISSING  # decades
    val_size: int = MISSING
    test_size: int = MISSING
    train_size: int = MISSING
    weight_decay_gain: float = MISSING
    weight_decay_best: float = MISSING
    crash_rate: float = MISSING
    epoch_seconds: float = MISSING  # seconds slept per epoch (x step_cost)


SCHEDULER_SCHEMAS: Dict[str, type] = {
    "scheduler": SchedulerConf,
    "step": StepConf,
    "multistep": MultiStepConf,
    "exponential": ExponentialConf,
    "cosine": CosineConf,
    "warmup_cosine": WarmupCosineConf,
    "onecycle": OneCycleConf,
    "plateau": PlateauConf,
}

def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="model", name="model_schema", node=ModelConf)
    cs.store(group="data", name="data_schema", node=DataConf)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConf)
    for name, schema in SCHEDULER_SCHEMAS.items():
        cs.store(group="scheduler", name=f"{name}_schema", node=schema)
    for name, schema in LOGGER_SCHEMAS.items():
        cs.store(group="logger", name=f"{name}_schema", node=schema)
    # conf/workload/simulated.yaml: the simulated task's keys, typed (a misspelt one fails)
    cs.store(name="simulate_schema", node=SimulateConf, package="simulate")
    # ${optsweep.task_modules:}: what a sweep's slot worker imports before its first trial
    OmegaConf.register_new_resolver("optsweep.task_modules", task_modules, replace=True)
    # ${optsweep.direction:${trainer.objective},${data.val_fraction}}: the run contract's direction
    # of the objective, for sweepers (conf/sweep/lr_search.yaml)
    OmegaConf.register_new_resolver("optsweep.direction", objective_direction, replace=True)
    # ${optsweep.around:${optimizer.lr}}: space=lr_only's ends, around the optimizer's own lr
    OmegaConf.register_new_resolver("optsweep.around", around, replace=True)


def task_modules(*, _root_: DictConfig) -> list[str]:
    """The modules a slot worker preloads (``hydra.sweeper.preload`` of conf/sweep/tune.yaml and
    lr_search.yaml): the sweep job and its task, training (torch) or the simulated stand-in."""
    simulated = OmegaConf.select(_root_, SIMULATE_KEY, default=None) is not None
    return ["optsweep.sweep.job", "optsweep.simulate.task" if simulated else "optsweep.train"]


def objective_direction(objective: str, val_fraction: float) -> str:
    """``maximize`` or ``minimize``: the direction of the objective these two keys name."""
    cfg = {"trainer": {"objective": objective}, "data": {"val_fraction": val_fraction}}
    return contract.direction(contract.objective_name(cfg))


# space=lr_only searches lr from default / 10**2 to default * 10**2: Adam's 1e-3 gets the
# 1e-5 ... 1e-1 of DeepOBS's lr search, and an lr of 1.0 (Prodigy, D-Adaptation, Schedule-Free
# SGD, LBFGS) its own default with room either way, not a range whose top is 10x below it
LR_ONLY_DECADES = 2


def around(value: float) -> str:
    """``low, high`` for ``interval(...)``: ``LR_ONLY_DECADES`` decades either side of ``value``,
    each a float literal (``interval(1, 100)`` would be an int range) rounded to 6 digits (2.5e-3 *
    100 would read 0.25000000000000006)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"optimizer.lr={value!r}: space=lr_only needs a default lr > 0 to search "
                         "around; set optimizer.lr or choose another space")
    factor = 10.0 ** LR_ONLY_DECADES
    return ", ".join(repr(float(f"{end:.6g}")) for end in (value / factor, value * factor))


SIMULATE_KEY = "simulate"  # its presence makes a run the simulated task (optsweep.dispatch)


# --- checks beyond types --------------------------------------------------------------------------

PRECISIONS = ("fp32", "bf16", "fp16")
# Hyperparameters that torch itself requires to be >= 0 (it raises deep inside the constructor).
NON_NEGATIVE = ("lr", "eps", "weight_decay", "lr_decay", "momentum", "initial_accumulator_value",
                "dampening", "adamw_lr", "adamw_eps", "adamw_weight_decay")  # adamw_*: Muon's
UNIT_INTERVAL = ("beta1", "beta2", "alpha", "rho", "adamw_beta1", "adamw_beta2")  # decays: [0, 1)
# ``alpha`` is a decay rate for RMSprop (which has ``centered``); ASGD's is an exponent
DECAY_ALPHA_WITH = "centered"


def _require(ok: bool, key: str, value: Any, expected: str, hint: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, expected, hint)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad key of the config's own rules (``train.check_config``
    adds the dataset's and the model's); called before anything is loaded or trained."""
    _validate_optimizer(cfg.optimizer)
    data, trainer = cfg.data, cfg.trainer
    for key in ("batch_size", "eval_batch_size", "image_size"):
        _require(data[key] >= 1, f"data.{key}", data[key], "an integer >= 1")
    _require(0.0 <= data.val_fraction < 1.0, "data.val_fraction", data.val_fraction,
             "a fraction in [0, 1)", "0 means no validation split")
    for key in ("train_limit", "test_limit"):
        _require(data[key] is None or data[key] >= 1, f"data.{key}", data[key],
                 "null (all examples) or an integer >= 1")
    _require(len(data.mean) == 3 and len(data.std) == 3 and min(data.std) > 0, "data.std",
             list(data.std), "three positive numbers (and data.mean three numbers)")
    _require(trainer.epochs >= 1, "trainer.epochs", trainer.epochs, "an integer >= 1")
    _require(trainer.precision in PRECISIONS, "trainer.precision", trainer.precision,
             f"one of {', '.join(PRECISIONS)}")
    _require(trainer.objective == "auto" or trainer.objective in contract.OBJECTIVES,
             "trainer.objective", trainer.objective,
             f"auto or one of {', '.join(contract.OBJECTIVES)}")
    _require(not (trainer.objective.startswith("val_") and data.val_fraction == 0),
             "trainer.objective", trainer.objective, "a test_* metric when data.val_fraction=0",
             "there is no validation split to measure it on")
    _require(trainer.early_stop_patience is None or trainer.early_stop_patience >= 1,
             "trainer.early_stop_patience", trainer.early_stop_patience,
             "null (off) or epochs >= 1")
    for key in ("early_stop_patience", "keep_best"):
        _require(not trainer[key] or data.val_fraction > 0, f"trainer.{key}", trainer[key],
                 "null/false when data.val_fraction=0", "it reads the validation split, never test")
    _require(trainer.max_loss > 0, "trainer.max_loss", trainer.max_loss, "a number > 0")
    _require(trainer.num_threads is None or trainer.num_threads >= 1, "trainer.num_threads",
             trainer.num_threads, "null or an integer >= 1")
    _validate_scheduler(cfg.scheduler, data.val_fraction)


def _validate_scheduler(sched: DictConfig, val_fraction: float) -> None:
    _require(sched.step_per in STEP_PER, "scheduler.step_per", sched.step_per,
             f"one of {', '.join(STEP_PER)}")
    for key in ("step_size", "T_max"):
        if key in sched:
            _require(sched[key] >= 1, f"scheduler.{key}", sched[key], "an integer >= 1 (epochs)")
    if "milestones" in sched:
        _require(all(m >= 1 for m in sched.milestones), "scheduler.milestones",
                 list(sched.milestones), "epochs >= 1")
    if "warmup_epochs" in sched:
        _require(0 <= sched.warmup_epochs < sched.T_max, "scheduler.warmup_epochs",
                 sched.warmup_epochs, f"an integer in [0, scheduler.T_max={sched.T_max})")
    if "gamma" in sched:
        _require(sched.gamma > 0, "scheduler.gamma", sched.gamma, "a number > 0")
    if str(sched._target_).endswith("ReduceLROnPlateau"):
        _require(sched.step_per == "epoch", "scheduler.step_per", sched.step_per, "epoch",
                 "plateau reads the validation objective, measured once per epoch")
        _require(val_fraction > 0, "scheduler", "plateau",
                 "a validation split (data.val_fraction > 0)",
                 "a schedule never reads the test split")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_optimizer(opt: DictConfig) -> None:
    """Ranges of the common hyperparameters (types too: the optimizer group has no schema); what
    is particular to one class is judged by the class itself (``optsweep.optim.check``)."""
    for key in NON_NEGATIVE:
        if key in opt and not OmegaConf.is_list(opt[key]):  # Adafactor's eps is a pair
            value = opt[key]
            _require(_is_number(value) and math.isfinite(value) and value >= 0,
                     f"optimizer.{key}", value, "a finite number >= 0")
    for key in UNIT_INTERVAL:
        if key in opt and (key != "alpha" or DECAY_ALPHA_WITH in opt):
            _require(_is_number(opt[key]) and 0.0 <= opt[key] < 1.0, f"optimizer.{key}",
                     opt[key], "a number in [0, 1)")
    if opt.get("betas") is not None:
        betas = list(opt.betas)
        _require(len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas), "optimizer.betas", betas,
                 "a pair [beta1, beta2], each in [0, 1)")
    if opt.get("nesterov") and "dampening" in opt:  # SGD's rule; Muon has no dampening
        _require(opt.momentum > 0 and opt.dampening == 0, "optimizer.nesterov", True,
                 "momentum > 0 and dampening = 0 (torch's rule for Nesterov momentum)")
