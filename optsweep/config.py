"""Typed schemas for every config group, registered in Hydra's ConfigStore, and the checks that
types cannot express (ranges, choices), run before any data is read or any model is built.

Each YAML in ``conf/<group>/`` names its schema first in its defaults list (``- adam_schema``), so a
misspelt key or a value of the wrong type fails at composition with Hydra's message naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from optsweep.errors import ConfigError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def conf_dir() -> str:
    """The config tree: ``conf/`` beside the package in a checkout or an editable install, or
    ``optsweep/conf`` inside the package when installed from a wheel (pyproject maps it there)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"optsweep's config tree was not found beside {here}; reinstall optsweep")


# --- schemas ------------------------------------------------------------------------------------


@dataclass
class ModelConf:
    name: str = "resnet18"
    weights: Optional[str] = "IMAGENET1K_V1"
    freeze_backbone: bool = False


@dataclass
class DataConf:
    name: str = MISSING
    root: str = "data"
    download: bool = True
    batch_size: int = 128
    eval_batch_size: int = 1000
    val_fraction: float = 0.1
    augment: bool = False
    image_size: int = 32
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))


@dataclass
class TrainerConf:
    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    objective: str = "auto"
    progress: bool = True
    channels_last: bool = True
    fast_path: bool = True
    precision: str = "fp32"
    compile: bool = False
    num_threads: Optional[int] = None
    max_loss: float = 1000.0
    resume: bool = True
    keep_checkpoint: bool = False


@dataclass
class OptimizerConf:
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0
    foreach: Optional[bool] = None
    maximize: bool = False
    differentiable: bool = False


@dataclass
class AdamConf(OptimizerConf):
    _target_: str = "torch.optim.Adam"
    beta1: float = 0.9
    beta2: float = 0.999
    betas: Optional[List[float]] = None
    eps: float = 1e-8
    amsgrad: bool = False
    capturable: bool = False
    fused: Optional[bool] = None
    decoupled_weight_decay: bool = False


@dataclass
class AdamWConf(OptimizerConf):
    _target_: str = "torch.optim.AdamW"
    beta1: float = 0.9
    beta2: float = 0.999
    betas: Optional[List[float]] = None
    eps: float = 1e-8
    weight_decay: float = 1e-2
    amsgrad: bool = False
    capturable: bool = False
    fused: Optional[bool] = None


@dataclass
class AdagradConf(OptimizerConf):
    _target_: str = "torch.optim.Adagrad"
    lr_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    fused: Optional[bool] = None


@dataclass
class RMSpropConf(OptimizerConf):
    _target_: str = "torch.optim.RMSprop"
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    capturable: bool = False


@dataclass
class AdadeltaConf(OptimizerConf):
    _target_: str = "torch.optim.Adadelta"
    rho: float = 0.9
    eps: float = 1e-6
    capturable: bool = False


@dataclass
class SGDConf(OptimizerConf):
    _target_: str = "torch.optim.SGD"
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    fused: Optional[bool] = None


OPTIMIZER_SCHEMAS = {
    "adam": AdamConf,
    "adamw": AdamWConf,
    "adagrad": AdagradConf,
    "rmsprop": RMSpropConf,
    "adadelta": AdadeltaConf,
    "sgd": SGDConf,
}


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="model", name="model_schema", node=ModelConf)
    cs.store(group="data", name="data_schema", node=DataConf)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConf)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        cs.store(group="optimizer", name=f"{name}_schema", node=schema)
    # hydra/sweeper=optsweep_optuna (registered again here for compose() before plugin discovery)
    from hydra_plugins.optsweep_sweeper.optsweep_optuna_sweeper import register_sweeper_configs

    register_sweeper_configs()


# --- checks beyond types --------------------------------------------------------------------------

DATASETS = ("cifar100", "cifar10", "digits", "imagefolder")
PRECISIONS = ("fp32", "bf16", "fp16")
OBJECTIVES = ("val_acc1", "val_acc5", "val_loss", "test_acc1", "test_acc5", "test_loss")
# Hyperparameters that torch itself requires to be >= 0 (it raises deep inside the constructor).
NON_NEGATIVE = ("lr", "eps", "weight_decay", "lr_decay", "momentum", "initial_accumulator_value",
                "dampening")
UNIT_INTERVAL = ("beta1", "beta2", "alpha", "rho")  # decay rates: [0, 1)


def _require(ok: bool, key: str, value: Any, expected: str, hint: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, expected, hint)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad key; called before anything is loaded or trained."""
    _validate_optimizer(cfg.optimizer)
    data, trainer = cfg.data, cfg.trainer
    _require(data.name in DATASETS, "data.name", data.name, f"one of {', '.join(DATASETS)}",
             "pick a config with data=NAME")
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
    _require(trainer.objective == "auto" or trainer.objective in OBJECTIVES, "trainer.objective",
             trainer.objective, f"auto or one of {', '.join(OBJECTIVES)}")
    _require(not (trainer.objective.startswith("val_") and data.val_fraction == 0),
             "trainer.objective", trainer.objective, "a test_* metric when data.val_fraction=0",
             "there is no validation split to measure it on")
    _require(trainer.max_loss > 0, "trainer.max_loss", trainer.max_loss, "a number > 0")
    _require(trainer.num_threads is None or trainer.num_threads >= 1, "trainer.num_threads",
             trainer.num_threads, "null or an integer >= 1")
    _require(cfg.model.name == "resnet18", "model.name", cfg.model.name, "resnet18")


def _validate_optimizer(opt: DictConfig) -> None:
    for key in NON_NEGATIVE:
        if key in opt:
            value = opt[key]
            _require(math.isfinite(value) and value >= 0, f"optimizer.{key}", value,
                     "a finite number >= 0")
    for key in UNIT_INTERVAL:
        if key in opt:
            _require(0.0 <= opt[key] < 1.0, f"optimizer.{key}", opt[key], "a number in [0, 1)")
    if opt.get("betas") is not None:
        betas = list(opt.betas)
        _require(len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas), "optimizer.betas", betas,
                 "a pair [beta1, beta2], each in [0, 1)")
    if opt.get("nesterov"):
        _require(opt.momentum > 0 and opt.dampening == 0, "optimizer.nesterov", True,
                 "momentum > 0 and dampening = 0 (torch's rule for Nesterov momentum)")
