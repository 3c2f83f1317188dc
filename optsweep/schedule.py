"""Learning-rate schedules from the ``scheduler`` config group, stepped per batch or per epoch.

Each YAML in ``conf/scheduler/`` names a ``torch.optim.lr_scheduler`` class (``_target_``,
``_partial_: true``) and ``step_per: batch | epoch``. Arguments that count time are written in
epochs (``EPOCH_ARGS``) and converted to optimizer steps here when the schedule steps per batch, so
``scheduler.T_max=${trainer.epochs}`` means the same whatever the batch size. The code fills what
only the run knows: OneCycleLR's ``max_lr`` (``optimizer.lr``: the peak) and ``total_steps``;
ReduceLROnPlateau's ``mode`` (the objective's direction, from the contract) and the metric it
watches (the objective's measure on the validation split, never the test split).
"""

from __future__ import annotations

import math
from typing import Optional

import hydra.utils
import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim import lr_scheduler

from optsweep import contract

# Arguments that count epochs in the YAML files; torch counts them in calls to step().
EPOCH_ARGS = ("step_size", "milestones", "T_max", "total_iters", "warmup_epochs")
OWN_KEYS = ("step_per",)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_epochs: int, T_max: int,
                  start_factor: float, eta_min: float, last_epoch: int = -1
                  ) -> lr_scheduler.LRScheduler:
    """Linear warmup from ``start_factor * lr`` to ``lr`` over ``warmup_epochs`` steps, then cosine
    annealing to ``eta_min`` at step ``T_max`` (counted from the start, warmup included).
    torch's own LinearLR and CosineAnnealingLR chained by SequentialLR."""
    cosine_steps = max(1, T_max - warmup_epochs)
    if warmup_epochs == 0:
        return lr_scheduler.CosineAnnealingLR(optimizer, cosine_steps, eta_min, last_epoch)
    warmup = lr_scheduler.LinearLR(optimizer, start_factor, 1.0, warmup_epochs, last_epoch)
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, cosine_steps, eta_min, last_epoch)
    return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], [warmup_epochs], last_epoch)


def scheduler_kwargs(cfg: DictConfig, epochs: int, steps_per_epoch: int) -> dict:
    """torch's keyword arguments for ``cfg`` (``_target_``/``_partial_`` kept for instantiate),
    epoch counts converted to steps when the schedule steps per batch."""
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    per_step = steps_per_epoch if kwargs["step_per"] == "batch" else 1
    for key in OWN_KEYS:
        kwargs.pop(key)
    for key in EPOCH_ARGS:
        if isinstance(kwargs.get(key), list):
            kwargs[key] = [value * per_step for value in kwargs[key]]
        elif kwargs.get(key) is not None:
            kwargs[key] = kwargs[key] * per_step
    if kwargs["_target_"] == "torch.optim.lr_scheduler.ExponentialLR":
        kwargs["gamma"] = kwargs["gamma"] ** (1.0 / per_step)  # gamma is the factor per epoch
    if kwargs["_target_"] == "torch.optim.lr_scheduler.OneCycleLR":
        kwargs["total_steps"] = epochs * per_step
    return kwargs


class Schedule:
    """The run's scheduler and when it steps; a constant lr when ``cfg._target_`` is null."""

    def __init__(self, cfg: DictConfig, optimizer: torch.optim.Optimizer, epochs: int,
                 steps_per_epoch: int, objective: str) -> None:
        self.step_per = cfg.step_per
        self.monitor = contract.best_epoch_metric(objective)
        self.scheduler: Optional[lr_scheduler.LRScheduler] = None
        if cfg._target_ is None:
            return
        kwargs = scheduler_kwargs(cfg, epochs, steps_per_epoch)
        factory = hydra.utils.instantiate(kwargs)
        if factory.func is lr_scheduler.OneCycleLR:  # optimizer.lr is the peak
            factory.keywords["max_lr"] = [group["lr"] for group in optimizer.param_groups]
        if factory.func is lr_scheduler.ReduceLROnPlateau:
            factory.keywords["mode"] = "max" if contract.maximize(objective) else "min"
        self.scheduler = factory(optimizer)

    def after_batch(self) -> None:
        if self.scheduler is not None and self.step_per == "batch":
            self.scheduler.step()

    def after_epoch(self, row: dict) -> None:
        if self.scheduler is None or self.step_per != "epoch":
            return
        if isinstance(self.scheduler, lr_scheduler.ReduceLROnPlateau):
            value = row.get(self.monitor)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(f"scheduler=plateau watches {self.monitor}, which this run does "
                                 "not measure")
            self.scheduler.step(value)
        else:
            self.scheduler.step()

    def state_dict(self) -> Optional[dict]:
        return self.scheduler.state_dict() if self.scheduler is not None else None

    def load_state_dict(self, state: Optional[dict]) -> None:
        if self.scheduler is not None and state is not None:
            self.scheduler.load_state_dict(state)
