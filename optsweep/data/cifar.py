"""CIFAR-10 and CIFAR-100 from their official python-pickle layout, straight into uint8 tensors.

torchvision downloads the archives (and checks their MD5); reading is ours, because torchvision's
dataset classes also check each extracted file's MD5, which rejects any other file in the same
format (a test's fabricated copy, a re-pickled mirror). The official files were written by Python 2:
their keys load as ``str`` with encoding='latin1' and as ``bytes`` with encoding='bytes'; both work.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optsweep.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: checking files needs none
    import torch


@dataclass(frozen=True)
class CifarLayout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    torchvision_class: str


LAYOUTS = {
    "cifar100": CifarLayout("cifar-100-python", ("train",), ("test",), "meta", "fine_labels",
                            "fine_label_names", 100, "CIFAR100"),
    "cifar10": CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                           ("test_batch",), "batches.meta", "labels", "label_names", 10, "CIFAR10"),
}


def expected_files(name: str, root: str | Path) -> list[Path]:
    layout = LAYOUTS[name]
    folder = Path(root) / layout.folder
    return [folder / f for f in (*layout.train_files, *layout.test_files, layout.meta_file)]


def ensure_cifar(name: str, root: str | Path, download: bool) -> None:
    """Make sure the dataset's files are on disk (downloading them if allowed) or raise
    DataError."""
    files = expected_files(name, root)
    missing = [f for f in files if not f.is_file()]
    if missing and download:
        _download(name, root, files)
        missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(_missing_message(name, root, missing, download))


def read_cifar(name: str, root: str | Path, download: bool):
    """Return (train_x, train_y, test_x, test_y, class_names); x is uint8 N x 3 x 32 x 32."""
    layout = LAYOUTS[name]
    ensure_cifar(name, root, download)
    folder = Path(root) / layout.folder
    train_x, train_y = _read_batches([folder / f for f in layout.train_files], layout)
    test_x, test_y = _read_batches([folder / f for f in layout.test_files], layout)
    names = [_text(n) for n in _load(folder / layout.meta_file)[layout.names_key]]
    return train_x, train_y, test_x, test_y, names


def _download(name: str, root: str | Path, files: list[Path]) -> None:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, LAYOUTS[name].torchvision_class)
    try:
        dataset_class(str(root), train=True, download=True)
    except Exception as exc:  # no network, a proxy page, a full disk: the message says which
        raise DataError(
            f"{name} is not under data.root={root} and could not be downloaded ({exc}). "
            f"Put the official files there ({', '.join(str(f) for f in files)}), or run offline "
            f"with data=digits"
        ) from exc


def _missing_message(name: str, root, missing: list[Path], download: bool) -> str:
    how = "" if download else " or set data.download=true"
    return (f"{name} not found under data.root={root}: "
            f"missing {', '.join(str(f) for f in missing)}. "
            f"Put the official python-version files there{how}, or use data=digits (offline)")


def _load(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
        return {_text(k): v for k, v in raw.items()}
    except Exception as exc:
        raise DataError(f"{path} is corrupt or not a CIFAR python pickle ({type(exc).__name__}: "
                        f"{exc}); delete it to download a fresh copy") from exc


def _text(value) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _read_batches(paths: list[Path], layout: CifarLayout) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    xs, ys = [], []
    for path in paths:
        batch = _load(path)
        if "data" not in batch or layout.label_key not in batch:
            raise DataError(f"{path} is corrupt: it has no 'data' or '{layout.label_key}' entry; "
                            "delete it to download a fresh copy")
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch[layout.label_key], dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path} is corrupt: its data or labels are not numbers ({exc}); "
                            "delete it to download a fresh copy") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
            raise DataError(f"{path} is corrupt: data has shape {data.shape} and {len(labels)} "
                            "labels, expected N x 3072 and N labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
            raise DataError(f"{path} is corrupt: labels outside [0, {layout.num_classes})")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
