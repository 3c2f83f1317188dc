"""Datasets as uint8 tensors in memory, split into train / validation / test.

``load_splits(cfg.data, seed)`` is the one entry point. Reading a dataset is cached per process,
so that the later jobs of a multirun start from memory, not from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import torch
from omegaconf import DictConfig

from optsweep.data.cifar import read_cifar
from optsweep.data.digits import read_digits
from optsweep.data.imagefolder import read_imagefolder


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


@lru_cache(maxsize=2)
def read_dataset(name: str, root: str, download: bool, image_size: int):
    """(train_x, train_y, test_x, test_y, classes) as read from disk; cached, never mutated."""
    if name in ("cifar100", "cifar10"):
        return read_cifar(name, root, download)
    if name == "digits":
        return read_digits()
    if name == "imagefolder":
        return read_imagefolder(root, image_size)
    raise ValueError(f"unknown dataset {name!r}")


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
