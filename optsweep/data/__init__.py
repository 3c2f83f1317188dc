"""Datasets as uint8 tensors in memory, split into train / validation / test.

``load_splits(cfg.data, seed)`` is the one entry point. Reading a dataset is cached per process,
so that the later jobs of a multirun start from memory, not from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import torch
from omegaconf import DictConfig

from optsweep.data.cifar import ensure_cifar, read_cifar
from optsweep.data.digits import read_digits
from optsweep.data.imagefolder import check_imagefolder, read_imagefolder


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x 3 x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Splits:
    train: Split
    val: Optional[Split]
    test: Split
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Dataset:
    """How to read a dataset (``read(root, download, image_size)`` returns train images, train
    labels, test images, test labels and class names; images uint8 N x 3 x H x W) and how to tell
    cheaply, before a sweep launches, that it can be read (``check(root, download)`` raises
    DataError)."""

    read: Callable
    check: Callable = lambda root, download: None


# The datasets `data.name` may name: adding one is an entry here and a YAML file in conf/data/.
REGISTRY: dict[str, Dataset] = {
    "cifar100": Dataset(lambda root, download, size: read_cifar("cifar100", root, download),
                        lambda root, download: ensure_cifar("cifar100", root, download)),
    "cifar10": Dataset(lambda root, download, size: read_cifar("cifar10", root, download),
                       lambda root, download: ensure_cifar("cifar10", root, download)),
    "digits": Dataset(lambda root, download, size: read_digits()),
    "imagefolder": Dataset(lambda root, download, size: read_imagefolder(root, size),
                           lambda root, download: check_imagefolder(root)),
}
DATASETS = tuple(REGISTRY)


def check_available(cfg: DictConfig) -> None:
    """Raise DataError when ``cfg`` (the data group) names a dataset that cannot be read here."""
    REGISTRY[cfg.name].check(str(cfg.root), bool(cfg.download))


@lru_cache(maxsize=2)
def read_dataset(name: str, root: str, download: bool, image_size: int):
    """(train_x, train_y, test_x, test_y, classes) as read from disk; cached, never mutated."""
    return REGISTRY[name].read(root, download, image_size)


def load_splits(cfg: DictConfig, seed: int) -> Splits:
    """Apply the caps and the seeded validation split of ``cfg`` (the ``data`` group)."""
    train_x, train_y, test_x, test_y, classes = read_dataset(cfg.name, str(cfg.root),
                                                             bool(cfg.download), cfg.image_size)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_y), generator=generator)
    if cfg.train_limit is not None:
        order = order[: cfg.train_limit]
    n_val = round(len(order) * cfg.val_fraction) if cfg.val_fraction > 0 else 0
    if cfg.val_fraction > 0:
        n_val = max(1, min(n_val, len(order) - 1))  # both parts non-empty
    val_idx, train_idx = order[:n_val], order[n_val:]
    test_n = len(test_y) if cfg.test_limit is None else min(cfg.test_limit, len(test_y))
    return Splits(
        train=Split(train_x[train_idx], train_y[train_idx]),
        val=Split(train_x[val_idx], train_y[val_idx]) if n_val else None,
        test=Split(test_x[:test_n], test_y[:test_n]),
        classes=list(classes),
    )
