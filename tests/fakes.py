"""Small stand-ins for the real on-disk formats, written by the tests (no network, ever)."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import torch
import torchvision


class Py2Str(str):
    """A string pickled as Python 2 pickled its ``str`` (BINSTRING), as the official CIFAR files
    are: it loads as ``str`` with encoding='latin1' and as ``bytes`` with encoding='bytes'."""


class Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: Py2Str) -> None:
        raw = obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[Py2Str] = save_py2_str


def py2_pickle(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def _batch(rng: np.random.Generator, n: int, num_classes: int, label_key: str, name: str) -> dict:
    labels = np.arange(n) % num_classes  # every class present, in a fixed order
    rng.shuffle(labels)
    return {Py2Str("batch_label"): Py2Str(name),
            Py2Str(label_key): [int(v) for v in labels],
            Py2Str("data"): rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            Py2Str("filenames"): [Py2Str(f"img_{i}.png") for i in range(n)]}


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        batch = _batch(rng, n, 100, "fine_labels", split)
        batch[Py2Str("coarse_labels")] = [v // 5 for v in batch[Py2Str("fine_labels")]]
        py2_pickle(folder / split, batch)
    py2_pickle(folder / "meta", {
        Py2Str("fine_label_names"): [Py2Str(f"class_{i}") for i in range(100)],
        Py2Str("coarse_label_names"): [Py2Str(f"super_{i}") for i in range(20)]})
    return folder


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        py2_pickle(folder / f"data_batch_{i}", _batch(rng, per_batch, 10, "labels", f"batch {i}"))
    py2_pickle(folder / "test_batch", _batch(rng, n_test, 10, "labels", "test"))
    py2_pickle(folder / "batches.meta", {
        Py2Str("label_names"): [Py2Str(f"class_{i}") for i in range(10)],
        Py2Str("num_cases_per_batch"): per_batch, Py2Str("num_vis"): 3072})
    return folder


def write_resnet18_weights(hub_dir: Path) -> tuple[Path, dict]:
    """A resnet18 state dict at the file name torchvision's IMAGENET1K_V1 weights are cached
    under."""
    torch.manual_seed(1234)
    state = torchvision.models.resnet18(weights=None).state_dict()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    path = hub_dir / "checkpoints" / url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state


def write_imagefolder(root: Path, classes=("cat", "dog"), per_class: int = 6, size: int = 20):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root
