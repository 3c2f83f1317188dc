"""The protocol each optimizer family needs, in one place, so the training loop has no ``if``s.

The loop calls, for every optimizer: ``train_mode()`` before an epoch's first step,
``step(closure, scaler)`` for each batch, ``eval_mode(model, inputs)`` before evaluating or saving,
and ``extra_metrics()`` once per epoch. Which adapter an optimizer gets is read from its class:

- ``ScheduleFreeAdapter``: a class with ``train()``/``eval()`` (Schedule-Free, Defazio et al. 2024,
  the ``schedulefree`` package). In train mode the parameters hold the point gradients are taken
  at, not the weights to evaluate, so every evaluation and every save follows ``optimizer.eval()``
  (schedule_free issues #15 and #48); batch-norm statistics are then re-estimated at the evaluation
  weights, as its README says: model in train mode, ``calibration_batches`` training batches
  forwarded under no_grad (the README's ~50; PreciseBN would be the exact pass).
- ``ClosureAdapter``: a class whose ``step`` requires a closure (LBFGS): the closure re-evaluates
  the batch, as often as the class asks.
- every adapter records the step-size estimate of a class that keeps one (Prodigy, D-Adaptation:
  ``d`` in the first parameter group, effective step ``d x lr``) as ``step_size_estimate``.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Callable, Iterable

import torch

from optsweep.contract import STEP_SIZE_COLUMN
from optsweep.model import has_batch_norm

Closure = Callable[[], torch.Tensor]


def named_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """The hyperparameters ``cls`` names (not ``params``): its ``__init__``'s, or, when that only
    forwards ``**kwargs``, those of the first class above it that names some."""
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is torch.optim.Optimizer:
            continue
        parameters = inspect.signature(klass.__init__).parameters
        named = {name: p for name, p in parameters.items() if name not in ("self", "params")
                 and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if named:
            return named
    return {}


def needs_closure(cls: type) -> bool:
    """True when ``cls.step`` cannot be called without a closure (torch.optim.LBFGS)."""
    closure = inspect.signature(cls.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def estimates_step_size(cls: type) -> bool:
    """Prodigy and D-Adaptation: they start from an estimate ``d0`` and keep ``d`` in each group."""
    return "d0" in named_arguments(cls)


def has_train_eval(cls: type) -> bool:
    """True for Schedule-Free classes: torch.optim.Optimizer has neither method."""
    return callable(getattr(cls, "train", None)) and callable(getattr(cls, "eval", None))


class Adapter:
    """An optimizer that is built and stepped like torch.optim.Adam."""

    own_keys: tuple[str, ...] = ()  # optsweep's keys in the optimizer's YAML for this adapter

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.estimates_step_size = estimates_step_size(type(optimizer))

    def train_mode(self) -> None:
        pass

    def eval_mode(self, model: torch.nn.Module, inputs: Iterable[torch.Tensor]) -> None:
        """Bring ``model`` to the weights that are evaluated and saved; ``inputs``: normalised
        training images, in batches, for what needs them."""

    def step(self, closure: Closure, scaler: torch.amp.GradScaler) -> None:
        """``closure()`` zeroes the gradients, evaluates the batch and backpropagates."""
        closure()
        scaler.step(self.optimizer)

    def extra_metrics(self) -> dict:
        if not self.estimates_step_size:
            return {}
        return {STEP_SIZE_COLUMN: float(self.optimizer.param_groups[0]["d"])}


class ClosureAdapter(Adapter):
    """LBFGS and other classes that evaluate the batch themselves, several times a step."""

    def step(self, closure: Closure, scaler: torch.amp.GradScaler) -> None:
        self.optimizer.step(closure)  # a GradScaler cannot scale a closure: refused in fp16


class ScheduleFreeAdapter(Adapter):
    own_keys = ("calibration_batches",)

    def __init__(self, optimizer: torch.optim.Optimizer, calibration_batches: int = 50) -> None:
        super().__init__(optimizer)
        self.calibration_batches = calibration_batches

    def train_mode(self) -> None:
        self.optimizer.train()

    def eval_mode(self, model: torch.nn.Module, inputs: Iterable[torch.Tensor]) -> None:
        self.optimizer.eval()
        if not has_batch_norm(model) or self.calibration_batches == 0:
            return
        model.train()
        with torch.no_grad():
            for images in itertools.islice(inputs, self.calibration_batches):
                model(images)
        model.eval()


def adapter_class(cls: type) -> type[Adapter]:
    if needs_closure(cls):
        return ClosureAdapter
    if has_train_eval(cls):
        return ScheduleFreeAdapter
    return Adapter
