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

from optsweep.data.cifar import read_cifar
from optsweep.data.digits import read_digits
from optsweep.data.imagefolder import read_imagefolder
from optsweep.data.subset import stratified_sample

# The test subset (data.test_limit) is the same for every trainer.seed: runs that differ in seed
# are compared on the same test examples.
TEST_SUBSET_SEED = 0


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


def _cifar100(root: str, download: bool, image_size: int):
    return read_cifar("cifar100", root, download)


def _cifar10(root: str, download: bool, image_size: int):
    return read_cifar("cifar10", root, download)


def _digits(root: str, download: bool, image_size: int):
    return read_digits()


def _imagefolder(root: str, download: bool, image_size: int):
    return read_imagefolder(root, image_size)


# The datasets `data.name` may name: adding one is a reader here and a YAML file in conf/data/.
# A reader returns (train images, train labels, test images, test labels, class names), images as
# uint8 N x 3 x H x W tensors.
READERS: dict[str, Callable] = {
    "cifar100": _cifar100,
    "cifar10": _cifar10,
    "digits": _digits,
    "imagefolder": _imagefolder,
}
DATASETS = tuple(READERS)


@lru_cache(maxsize=2)
def read_dataset(name: str, root: str, download: bool, image_size: int):
    """(train_x, train_y, test_x, test_y, classes) as read from disk; cached, never mutated."""
    return READERS[name](root, download, image_size)


def load_splits(cfg: DictConfig, seed: int) -> Splits:
    """Apply the caps (seeded, class-stratified subsets) and the seeded validation split of
    ``cfg`` (the ``data`` group)."""
    train_x, train_y, test_x, test_y, classes = read_dataset(cfg.name, str(cfg.root),
                                                             bool(cfg.download), cfg.image_size)
    generator = torch.Generator().manual_seed(seed)
    if cfg.train_limit is None:
        order = torch.randperm(len(train_y), generator=generator)
    else:
        order = stratified_sample(train_y, cfg.train_limit, generator)
    n_val = round(len(order) * cfg.val_fraction) if cfg.val_fraction > 0 else 0
    if cfg.val_fraction > 0:
        n_val = max(1, min(n_val, len(order) - 1))  # both parts non-empty
    val_idx, train_idx = order[:n_val], order[n_val:]
    test_idx = torch.arange(len(test_y)) if cfg.test_limit is None else stratified_sample(
        test_y, cfg.test_limit, torch.Generator().manual_seed(TEST_SUBSET_SEED))
    return Splits(
        train=Split(train_x[train_idx], train_y[train_idx]),
        val=Split(train_x[val_idx], train_y[val_idx]) if n_val else None,
        test=Split(test_x[test_idx], test_y[test_idx]),
        classes=list(classes),
    )
