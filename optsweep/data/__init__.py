"""Datasets as uint8 tensors in memory, split into train / validation / test.

``load_splits(cfg.data, seed)`` is the one entry point. Reading a dataset is cached per process,
so that the later jobs of a multirun start from memory, not from disk.

Importing this package imports no torch (the functions that make tensors import it): a sweep's
launching process checks the data (``check_available``) before any job without the seconds a
torch import takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Optional

from omegaconf import DictConfig

from optsweep.data.cifar import ensure_cifar, read_cifar
from optsweep.data.digits import read_digits
from optsweep.data.imagefolder import check_imagefolder, count_images, read_imagefolder
from optsweep.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Dataset:
    """How to read a dataset (``read(root, download, image_size)`` returns train images, train
    labels, test images, test labels and class names; images uint8 N x 3 x H x W) and how to tell
    cheaply, before a sweep launches, that it can be read (``check(root, download)`` raises
    DataError)."""

    read: Callable
    # (images, side they are decoded at), known before reading it, so that a run that cannot fit
    # in memory is refused first: CIFAR and digits stay 32x32 in memory (batches are resized on
    # the fly); an image folder is decoded at data.image_size
    decoded: Callable[[str, int], tuple[int, int]]
    check: Callable = lambda root, download: None


# The datasets `data.name` may name: adding one is an entry here and a YAML file in conf/data/.
REGISTRY: dict[str, Dataset] = {
    "cifar100": Dataset(lambda root, download, size: read_cifar("cifar100", root, download),
                        lambda root, size: (60_000, 32),
                        lambda root, download: ensure_cifar("cifar100", root, download)),
    "cifar10": Dataset(lambda root, download, size: read_cifar("cifar10", root, download),
                       lambda root, size: (60_000, 32),
                       lambda root, download: ensure_cifar("cifar10", root, download)),
    "digits": Dataset(lambda root, download, size: read_digits(), lambda root, size: (1_797, 32)),
    "imagefolder": Dataset(lambda root, download, size: read_imagefolder(root, size),
                           lambda root, size: (count_images(root), size),
                           lambda root, download: check_imagefolder(root)),
}
DATASETS = tuple(REGISTRY)
SIMULATED = "simulated"  # conf/data/simulated.yaml: the simulated workload's, never read


def check_name(name: str) -> None:
    """Raise ConfigError when ``data.name`` names no dataset of ``REGISTRY``."""
    if name == SIMULATED:
        raise ConfigError("data.name", name, f"one of {', '.join(DATASETS)} for training",
                          "data=simulated has no images: it goes with workload=simulated, "
                          "which sets it")
    if name not in REGISTRY:
        raise ConfigError("data.name", name, f"one of {', '.join(DATASETS)}",
                          "pick a config with data=NAME; a new dataset is a reader in "
                          "optsweep/data/__init__.py")


def check_available(cfg: DictConfig) -> None:
    """Raise DataError when ``cfg`` (the data group) names a dataset that cannot be read here."""
    REGISTRY[cfg.name].check(str(cfg.root), bool(cfg.download))


def decoded_size(cfg: DictConfig) -> tuple[int, int]:
    """(images, side they are decoded at) of the dataset ``cfg`` names, known before reading it."""
    return REGISTRY[cfg.name].decoded(str(cfg.root), cfg.image_size)


@lru_cache(maxsize=2)
def read_dataset(name: str, root: str, download: bool, image_size: int):
    """(train_x, train_y, test_x, test_y, classes) as read from disk; cached, never mutated."""
    return REGISTRY[name].read(root, download, image_size)


def load_splits(cfg: DictConfig, seed: int) -> Splits:
    """Apply the caps (seeded, class-stratified subsets) and the seeded validation split of
    ``cfg`` (the ``data`` group)."""
    import torch

    from optsweep.data.subset import stratified_sample

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


def check_splits(splits: Splits, cfg: DictConfig, min_train: int = 1) -> None:
    """Raise ConfigError when the caps and the validation fraction of ``cfg`` (the ``data`` group)
    leave a split too small to train on: fewer than ``min_train`` training images (2 for models
    with batch norm), an empty validation split, or a class without a training image (the model
    would get an output it never learns)."""
    # blame the cap when there is one, else the fraction held out
    key, value = (("data.train_limit", cfg.train_limit) if cfg.train_limit is not None
                  else ("data.val_fraction", cfg.val_fraction))
    n_val = len(splits.val or ())
    held = (f"data.val_fraction={cfg.val_fraction} holds out {n_val} of "
            f"{len(splits.train) + n_val} examples for validation")
    if len(splits.train) < min_train:
        why = " (batch norm needs two images in a training batch)" if min_train > 1 else ""
        raise ConfigError(key, value, f"at least {min_train} training images{why}",
                          f"{held} and leaves {len(splits.train)} for training; raise "
                          "data.train_limit or lower data.val_fraction")
    if cfg.val_fraction > 0 and not splits.val:
        raise ConfigError(key, value, "a validation image", f"{held}; raise data.train_limit "
                          "or set data.val_fraction=0 to run without a validation split")
    trained = set(splits.train.labels.unique().tolist())
    seen = trained | (set(splits.val.labels.unique().tolist()) if splits.val else set())
    absent = [name for label, name in enumerate(splits.classes) if label not in trained]
    if not absent:
        return
    shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
    message = (f"{held} and leaves no training image of class {shown} ({len(absent)} of "
               f"{len(splits.classes)}): their outputs are never trained")
    if cfg.train_limit is None and len(seen) < len(splits.classes):  # the dataset has none
        raise ConfigError(key, value, "a training split with every class",
                          f"{message}; add training images of those classes")
    # a sample's chance (200 CIFAR-100 images miss a few classes): worth knowing, not fatal
    log.warning("%s; raise data.train_limit or lower data.val_fraction to train every class",
                message)
