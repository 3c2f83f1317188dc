"""torchvision's ResNet18 with its classifier replaced for the dataset's class count.

Pretrained weights go through torchvision's weights API, which caches them in the torch hub
directory (``$TORCH_HOME/hub/checkpoints``). Offline with an empty cache is a clear error, not a
stack of urllib frames.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Optional

import torch
import torchvision
from omegaconf import DictConfig
from torch import nn

from optsweep.errors import ConfigError, WeightsError


def weights_enum(model_name: str, weights: str):
    enum = torchvision.models.get_model_weights(model_name)
    try:
        return enum[weights]
    except KeyError:
        raise ConfigError("model.weights", weights,
                          f"null or one of {', '.join(m.name for m in enum)}") from None


def cached_weights_path(weights) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


@lru_cache(maxsize=2)
def _read_state_dict(model_name: str, weights_name: str, hub_dir: str) -> dict:
    """The pretrained state dict, read (or downloaded) once per process and hub directory."""
    weights = weights_enum(model_name, weights_name)
    path = cached_weights_path(weights)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        if os.path.isfile(path):
            raise WeightsError(f"the cached weights {path} could not be read ({exc}); delete the "
                               "file to download it again") from exc
        raise WeightsError(f"model.weights={weights_name} is not cached at {path} and could not "
                           f"be downloaded ({type(exc).__name__}). Copy the file there, or train "
                           "from scratch with model.weights=null") from exc


def check_weights_available(cfg: DictConfig) -> None:
    """Fail before any data is read when pretrained weights will not be found."""
    if cfg.weights is not None:
        _read_state_dict(cfg.name, cfg.weights, torch.hub.get_dir())


def build_model(cfg: DictConfig, num_classes: int) -> nn.Module:
    """ResNet18 (pretrained when ``cfg.weights`` names weights) with a new ``num_classes``-way fc."""
    model = torchvision.models.get_model(cfg.name, weights=None)
    if cfg.weights is not None:
        model.load_state_dict(_read_state_dict(cfg.name, cfg.weights, torch.hub.get_dir()))
    if cfg.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(False)
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # new layer: always trainable
    return model


def has_batch_norm(model: nn.Module) -> bool:
    """Batch norm in training mode cannot take a batch of one image (no variance to normalise by)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def count_parameters(model: nn.Module, trainable_only: Optional[bool] = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
