"""Optimizers from their config group: ``hydra.utils.instantiate`` on the YAML's ``_target_``.

Keys that are optsweep's own are folded into the class's arguments here:

- ``beta1``/``beta2`` become ``betas`` (so each can be swept alone) unless ``betas`` is a pair;
- ``no_decay_norm_bias: true`` puts biases and norm weights (every tensor of one dimension, as
  timm's ``param_groups_weight_decay``) in a second parameter group with ``weight_decay`` 0;
- an adapter's own keys (``optsweep.optim.adapters``) go to the adapter, not to the class.

With ``fused`` and ``foreach`` left null, the fastest implementation torch offers for the class and
device is chosen: fused (one kernel for all parameters), else the class's own default. All
implementations compute the same update.
"""

from __future__ import annotations

from typing import Iterable, Union

import hydra.utils
import torch
from omegaconf import DictConfig, OmegaConf

from optsweep.contract import BETA_KEYS, betas_that_ran
from optsweep.optim.adapters import Adapter, adapter_class, named_arguments

NO_DECAY_KEY = "no_decay_norm_bias"
HYDRA_KEYS = ("_target_", "_partial_")

NamedParameters = Iterable[tuple[str, torch.nn.Parameter]]


def optimizer_class(cfg: DictConfig) -> type:
    return hydra.utils.get_class(cfg._target_)


def optimizer_kwargs(cfg: DictConfig) -> dict:
    """The config as the class's keyword arguments (``_target_``/``_partial_`` kept for
    instantiate); optsweep's own keys left in, for ``split_own_keys``."""
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    if "beta1" in kwargs:
        kwargs["betas"] = betas_that_ran(kwargs)
    for key in BETA_KEYS:
        kwargs.pop(key, None)
    return kwargs


def split_own_keys(kwargs: dict, cls: type) -> tuple[dict, dict]:
    """(the class's arguments, optsweep's own keys) of ``kwargs``."""
    own_names = {*adapter_class(cls).own_keys, NO_DECAY_KEY} - set(named_arguments(cls))
    own = {k: kwargs[k] for k in own_names if k in kwargs}
    return {k: v for k, v in kwargs.items() if k not in own}, own


def weight_decay_groups(named: list[tuple[str, torch.nn.Parameter]], no_decay: bool) -> list:
    """One group, or with ``no_decay`` two: the second (biases and norm weights, every tensor of
    one dimension) with ``weight_decay`` 0, as timm's ``param_groups_weight_decay``."""
    if not no_decay:
        return [p for _, p in named]
    decay = [p for name, p in named if p.ndim > 1 and not name.endswith(".bias")]
    exempt = [p for name, p in named if p.ndim <= 1 or name.endswith(".bias")]
    return [g for g in ({"params": decay}, {"params": exempt, "weight_decay": 0.0}) if g["params"]]


def supports_fused(cls: type, device: torch.device) -> bool:
    if "fused" not in named_arguments(cls):
        return False
    try:  # torch raises at construction when it has no fused kernel for this device
        cls([torch.zeros(1, device=device, requires_grad=True)], fused=True)
        return True
    except (RuntimeError, ValueError, TypeError):
        return False


def _named(params: Union[NamedParameters, Iterable[torch.nn.Parameter]]) -> list:
    items = list(params)
    if items and not isinstance(items[0], tuple):
        items = [(str(i), p) for i, p in enumerate(items)]
    return [(name, p) for name, p in items if p.requires_grad]


def build_adapter(cfg: DictConfig, params: Union[NamedParameters, Iterable[torch.nn.Parameter]],
                  device: torch.device) -> Adapter:
    """The optimizer of ``cfg`` over ``params`` (``model.named_parameters()``; plain parameters
    are named by position), inside the adapter that speaks its protocol."""
    cls = optimizer_class(cfg)
    kwargs, own = split_own_keys(optimizer_kwargs(cfg), cls)
    # _partial_: a functools.partial over the class; plain values (a checkpoint holds the groups'
    # hyperparameters and is read with weights_only), pairs as the tuples the classes declare
    factory = hydra.utils.instantiate(kwargs, _convert_="all")
    factory.keywords.update({k: tuple(v) for k, v in factory.keywords.items()
                             if isinstance(v, list)})
    if kwargs.get("fused") is None and kwargs.get("foreach") is None and not kwargs.get(
            "differentiable") and supports_fused(cls, device):
        factory.keywords["fused"] = True
    named = _named(params)
    if getattr(cls, "takes_named_parameters", False):
        optimizer = factory(named)
    else:
        optimizer = factory(weight_decay_groups(named, bool(own.pop(NO_DECAY_KEY, False))))
    own.pop(NO_DECAY_KEY, None)
    return adapter_class(cls)(optimizer, **own)


def build_optimizer(cfg: DictConfig, params: Union[NamedParameters, Iterable[torch.nn.Parameter]],
                    device: torch.device) -> torch.optim.Optimizer:
    """The torch optimizer alone (its adapter's protocol is the caller's)."""
    return build_adapter(cfg, params, device).optimizer
