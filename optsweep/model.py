"""Any torchvision classification model by name, with its classifier replaced for the dataset.

``model.name`` is a name from ``torchvision.models.list_models(module=torchvision.models)``,
built by ``torchvision.models.get_model``; ``model.weights`` a member of its weights enum
(``get_model_weights``) or null. The layer that outputs ImageNet's 1,000 classes (``fc``,
``classifier[-1]``, ``heads.head``, ``head``, SqueezeNet's last convolution) is replaced by a new
one for the dataset's classes, whatever the family. A model that cannot run at ``data.image_size``
is refused before any data is read, with the size it needs (:func:`image_size_problem`).

Pretrained weights go through torchvision's weights API, which caches them in the torch hub
directory (``$TORCH_HOME/hub/checkpoints``). Offline with an empty cache is a clear error, not a
stack of urllib frames.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Optional

import torch
import torchvision
from omegaconf import DictConfig
from torch import nn

from optsweep.errors import ConfigError, WeightsError

IMAGENET_CLASSES = 1000  # what every torchvision classifier is built for
# Families built for the input size: their constructor takes it (position embeddings, attention
# partitions), set to data.image_size from scratch and fixed by the weights when pretrained.
SIZE_ARGUMENT = {"vit": "image_size", "maxvit": "input_size"}
# torchvision's builders set these when given weights (`_ovewrite_named_param` in
# torchvision/models, 0.29); building the same architecture with weights=None needs them too.
PRETRAINED_ARGS = {"googlenet": {"transform_input": True, "aux_logits": True,
                                 "init_weights": False},
                   "inception_v3": {"transform_input": True, "aux_logits": True,
                                    "init_weights": False}}
# Without weights: no auxiliary classifiers (their outputs are not the logits training expects).
SCRATCH_ARGS = {"googlenet": {"aux_logits": False, "init_weights": True},
                "inception_v3": {"aux_logits": False, "init_weights": True}}
# The smallest square input each architecture runs at from scratch, probed with a forward pass of
# every size from 1 px up (tests/test_model.py checks each at its size and one pixel less): a model
# not listed runs at 1 px and up, Swin and EfficientNetV2 included, whose weights' documented
# min_size (224, 33) is larger. ViTs need a multiple of their patch size; MaxViT a multiple of 224.
MIN_IMAGE_SIZE = {"alexnet": 63, "inception_v3": 75, "googlenet": 15, "squeezenet1_0": 21,
                  "squeezenet1_1": 17, "densenet121": 29, "densenet161": 29, "densenet169": 29,
                  "densenet201": 29,
                  **{f"convnext_{s}": 32 for s in ("tiny", "small", "base", "large")},
                  **{f"vgg{d}{bn}": 32 for d in (11, 13, 16, 19) for bn in ("", "_bn")}}


def model_names() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def family(name: str) -> str:
    """'vit_b_16' -> 'vit', 'maxvit_t' -> 'maxvit', 'resnet18' -> 'resnet18'."""
    return name.split("_", 1)[0]


def weights_enum(model_name: str, weights: str):
    enum = torchvision.models.get_model_weights(model_name)
    try:
        return enum[weights]
    except KeyError:
        raise ConfigError("model.weights", weights,
                          f"null or one of {', '.join(m.name for m in enum)}") from None


def check_model_name(name: str) -> None:
    if name not in model_names():
        raise ConfigError("model.name", name, f"one of {', '.join(model_names())}",
                          "torchvision's classification models")


def image_size_problem(cfg: DictConfig, image_size: int) -> Optional[str]:
    """Why ``cfg`` (the model group) cannot run at ``image_size`` x ``image_size``; None if it
    can."""
    sized = family(cfg.name) in SIZE_ARGUMENT
    if cfg.weights is not None:
        needed = weights_enum(cfg.name, cfg.weights).meta["min_size"][0]
        if sized and image_size != needed:
            return f"exactly {needed} with model.weights={cfg.weights} (the size it was built for)"
        if image_size < needed:
            return f"at least {needed} with model.weights={cfg.weights}"
        return None
    if family(cfg.name) == "vit":
        patch = int(re.search(r"(\d+)$", cfg.name).group(1))
        return None if image_size % patch == 0 else f"a multiple of {patch} (the patch size)"
    if family(cfg.name) == "maxvit":  # every stage's map (1/4 ... 1/32 of it) a multiple of 7
        return None if image_size % 224 == 0 else "a multiple of 224 (MaxViT's 7x7 partitions)"
    needed = MIN_IMAGE_SIZE.get(cfg.name, 1)
    return None if image_size >= needed else f"at least {needed}"


def is_resnet(name: str) -> bool:
    """torchvision's ResNet family (resnet*, resnext*, wide_resnet*): built in its resnet module."""
    return torchvision.models.get_model_builder(name).__module__ == "torchvision.models.resnet"


def check_model(cfg: DictConfig, image_size: int) -> None:
    """Fail on a model that cannot be built or cannot run at ``image_size``, before any data."""
    check_model_name(cfg.name)
    problem = image_size_problem(cfg, image_size)
    if problem:
        raise ConfigError("data.image_size", image_size, f"{problem} for model.name={cfg.name}")
    if cfg.cifar_stem and not is_resnet(cfg.name):
        raise ConfigError("model.cifar_stem", True, f"false for model.name={cfg.name}",
                          "the CIFAR stem replaces a ResNet's first convolution and max-pool")


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


def _architecture(cfg: DictConfig, image_size: int) -> nn.Module:
    """The untrained ImageNet architecture that ``cfg.weights`` (or none) fits."""
    kwargs = dict((PRETRAINED_ARGS if cfg.weights is not None else SCRATCH_ARGS).get(cfg.name, {}))
    argument = SIZE_ARGUMENT.get(family(cfg.name))
    if argument is not None:
        size = (weights_enum(cfg.name, cfg.weights).meta["min_size"][0]
                if cfg.weights is not None else image_size)
        kwargs[argument] = size if argument == "image_size" else (size, size)
    return torchvision.models.get_model(cfg.name, weights=None, **kwargs)


def _drop_auxiliary_classifiers(model: nn.Module) -> None:
    """As torchvision does for GoogLeNet and Inception v3 weights loaded with aux_logits=False."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, name):
                setattr(model, name, None)


def classifier_head(model: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """(parent, attribute, layer) of the last layer that outputs the 1,000 ImageNet classes."""
    found = None
    for parent in model.modules():
        for name, child in parent.named_children():
            if (isinstance(child, nn.Linear) and child.out_features == IMAGENET_CLASSES) or (
                    isinstance(child, nn.Conv2d) and child.out_channels == IMAGENET_CLASSES):
                found = (parent, name, child)
    if found is None:
        raise ConfigError("model.name", type(model).__name__, "a model with a 1000-class head")
    return found


def _new_head(layer: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, num_classes, bias=layer.bias is not None)
    return nn.Conv2d(layer.in_channels, num_classes, layer.kernel_size, layer.stride,
                     layer.padding, bias=layer.bias is not None)


def _cifar_stem(model: torchvision.models.ResNet) -> None:
    """A 3x3 stride-1 first convolution and no max-pool: 32x32 images keep 32x32 maps in layer1
    (the ImageNet stem shrinks them to 8x8), as in the CIFAR ResNets of He et al. (2016)."""
    model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()


def build_model(cfg: DictConfig, num_classes: int, image_size: int = 224) -> nn.Module:
    """``cfg.name`` (pretrained when ``cfg.weights`` names weights) with a new ``num_classes``-way
    head; only the head (and a CIFAR stem) trains with ``cfg.freeze_backbone``."""
    model = _architecture(cfg, image_size)
    if cfg.weights is not None:
        model.load_state_dict(_read_state_dict(cfg.name, cfg.weights, torch.hub.get_dir()))
    _drop_auxiliary_classifiers(model)
    if cfg.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(False)
    if cfg.cifar_stem:
        _cifar_stem(model)  # a new convolution, untrained even when pretrained: it always trains
    parent, name, layer = classifier_head(model)
    setattr(parent, name, _new_head(layer, num_classes))  # new layer: always trainable
    return model


def has_batch_norm(model: nn.Module) -> bool:
    """Batch norm in training mode cannot take a batch of one image (no variance to normalise
    by)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def count_parameters(model: nn.Module, trainable_only: Optional[bool] = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
