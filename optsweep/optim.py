"""Optimizers from their config group: ``hydra.utils.instantiate`` on the YAML's ``_target_``.

Two keys are optsweep's own and are folded into torch's arguments here: ``beta1``/``beta2`` become
``betas`` (so each can be swept alone) unless ``betas`` is given as a pair. With ``fused`` and
``foreach`` left null, the fastest implementation torch offers for the class and device is chosen:
fused (one kernel for all parameters), else torch's own default (foreach where supported).
All implementations compute the same update.
"""

from __future__ import annotations

import inspect
from typing import Iterable

import hydra.utils
import torch
from omegaconf import DictConfig, OmegaConf

from optsweep.errors import ConfigError

OWN_KEYS = ("beta1", "beta2")
HYDRA_KEYS = ("_target_", "_partial_")


def optimizer_kwargs(cfg: DictConfig) -> dict:
    """The config as torch's keyword arguments (``_target_``/``_partial_`` kept for instantiate)."""
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    if "beta1" in kwargs:
        pair = kwargs.get("betas")
        kwargs["betas"] = tuple(pair) if pair is not None else (kwargs["beta1"], kwargs["beta2"])
    for key in OWN_KEYS:
        kwargs.pop(key, None)
    return kwargs


def check_optimizer_keys(cfg: DictConfig) -> None:
    """Raise ConfigError naming a key (``+optimizer.foo=1``) that the ``_target_`` class does not
    take: checked against its signature before any data is read, not when it is first built."""
    try:
        optimizer_class = hydra.utils.get_class(cfg._target_)
    except Exception as exc:
        raise ConfigError("optimizer._target_", cfg._target_, "an importable optimizer class",
                          f"{type(exc).__name__}: {exc}") from None
    parameters = inspect.signature(optimizer_class.__init__).parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # takes any keyword: torch will judge
    valid = [name for name in parameters if name not in ("self", "params")]
    allowed = {*valid, *HYDRA_KEYS, *(OWN_KEYS if "betas" in valid else ())}
    for key in cfg:
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}", cfg[key], f"an argument of {cfg._target_}",
                              f"remove +optimizer.{key}; {optimizer_class.__name__} takes "
                              f"{', '.join(sorted(allowed - set(HYDRA_KEYS)))}")


def supports_fused(optimizer_class: type, device: torch.device) -> bool:
    if "fused" not in inspect.signature(optimizer_class.__init__).parameters:
        return False
    try:  # torch raises at construction when it has no fused kernel for this device
        optimizer_class([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, ValueError, TypeError):
        return False


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter],
                    device: torch.device) -> torch.optim.Optimizer:
    kwargs = optimizer_kwargs(cfg)
    factory = hydra.utils.instantiate(kwargs)  # _partial_: a functools.partial over the class
    if kwargs.get("fused") is None and kwargs.get("foreach") is None and not kwargs.get(
            "differentiable"):
        if supports_fused(factory.func, device):
            factory.keywords["fused"] = True
    return factory([p for p in params if p.requires_grad])
