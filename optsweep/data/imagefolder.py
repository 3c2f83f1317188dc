"""A user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``.

Each image is decoded once, converted to RGB, resized to image_size x image_size and kept in memory
as uint8, like the CIFAR path, so that training never touches PIL. Checking the folder imports
no torch (a sweep's launching process checks it before any job).

Decoding is slow (about 50 s for 60,000 small JPEGs) and every job of a multirun launched in its own
process (joblib, SLURM) would pay it again, so the decoded arrays are cached in
``root/.optsweep_cache/``, keyed by the folder's file list, sizes and modification times and
``image_size``: a later process memory-maps them (copy-on-write) instead of decoding, and a changed
folder gets a new key and is decoded again. A folder that cannot be written is simply not cached.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from optsweep.contract import atomic_write
from optsweep.errors import DataError

log = logging.getLogger(__name__)

CACHE_DIR = ".optsweep_cache"
CACHE_VERSION = 1  # bump when decoding changes (resize filter, layout)


def check_imagefolder(root: str | Path) -> None:
    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"data.root={root} has no '{split}/' folder: imagefolder expects "
                            f"{root}/train/<class>/<image> and {root}/test/<class>/<image>")


def read_imagefolder(root: str | Path, image_size: int):
    root = Path(root)
    check_imagefolder(root)
    train_files, classes = _list_split(root / "train", None)
    test_files, _ = _list_split(root / "test", classes)
    key = _cache_key(root, train_files + test_files, image_size)
    cached = _load_cache(root, key)
    if cached is not None:
        log.info("imagefolder: decoded images read from %s", root / CACHE_DIR)
        return (*cached, classes)
    train_x, train_y = _decode(train_files, image_size)
    test_x, test_y = _decode(test_files, image_size)
    _save_cache(root, key, {"train_x": train_x, "train_y": train_y, "test_x": test_x,
                            "test_y": test_y})
    return train_x, train_y, test_x, test_y, classes


def _cache_key(root: Path, files: list[tuple[Path, int]], image_size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} size={image_size}\n".encode())
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\t{label}\t{stat.st_size}\t"
                      f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


CACHED = ("train_x", "train_y", "test_x", "test_y")


def _load_cache(root: Path, key: str):
    import torch

    folder = root / CACHE_DIR / key
    if not all((folder / f"{name}.npy").is_file() for name in CACHED):
        return None
    try:  # copy-on-write: shared pages, and writable arrays as torch wants them
        return tuple(torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="c"))
                     for name in CACHED)
    except (OSError, ValueError) as exc:
        log.warning("imagefolder: ignoring the unreadable cache %s (%s)", folder, exc)
        return None


def _save_cache(root: Path, key: str, arrays: dict) -> None:
    folder = root / CACHE_DIR / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in CACHED:  # each file atomically: a reader sees a whole array or none
            atomic_write(folder / f"{name}.npy", lambda f, a=arrays[name]: np.save(f, a.numpy()),
                         binary=True)
    except OSError as exc:
        log.info("imagefolder: not caching decoded images in %s (%s)", root / CACHE_DIR, exc)


def count_images(root: str | Path) -> int:
    """Image files under root/train and root/test, counted without decoding any."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sum(1 for split in ("train", "test") for p in (Path(root) / split).glob("*/*")
               if p.suffix.lower() in IMG_EXTENSIONS)


def _list_split(folder: Path, classes: list[str] | None):
    """(path, label) of every image of ``folder``, and its classes (train/'s, for test/)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name != CACHE_DIR)
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{folder} has class folders {unknown} that train/ does not have")
    missing = [name for name in classes if name not in found]
    if missing:  # the test accuracy would never measure these classes, without a word
        raise DataError(f"{folder} has no folder for the classes {missing} that train/ has: add "
                        f"their test images as {folder}/<class>/<image>, or remove them from "
                        "train/")
    files = []
    for label, name in enumerate(classes):
        found_files = sorted(p for p in (folder / name).glob("*")
                             if p.suffix.lower() in IMG_EXTENSIONS)
        if not found_files:  # an empty class folder would silently add an output class
            raise DataError(f"{folder / name} holds no images (looked for "
                            f"{', '.join(IMG_EXTENSIONS)}): add images of class '{name}' or "
                            "remove the folder")
        files += [(path, label) for path in found_files]
    return files, classes


def _decode(files: list[tuple[Path, int]], image_size: int):
    import torch
    from PIL import Image

    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
        except Exception as exc:
            raise DataError(f"{path} could not be read as an image ({exc}); remove it") from exc
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return torch.from_numpy(np.stack(images)), labels
