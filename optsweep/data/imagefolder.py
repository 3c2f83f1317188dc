"""A user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``.

Each image is decoded once, converted to RGB, resized to image_size x image_size and kept in memory
as uint8, like the CIFAR path, so that training never touches PIL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optsweep.errors import DataError


def check_imagefolder(root: str | Path) -> None:
    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"data.root={root} has no '{split}/' folder: imagefolder expects "
                            f"{root}/train/<class>/<image> and {root}/test/<class>/<image>")


def read_imagefolder(root: str | Path, image_size: int):
    root = Path(root)
    check_imagefolder(root)
    train_x, train_y, classes = _read_split(root / "train", image_size, None)
    test_x, test_y, _ = _read_split(root / "test", image_size, classes)
    return train_x, train_y, test_x, test_y, classes


def count_images(root: str | Path) -> int:
    """Image files under root/train and root/test, counted without decoding any."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sum(1 for split in ("train", "test") for p in (Path(root) / split).glob("*/*")
               if p.suffix.lower() in IMG_EXTENSIONS)


def _read_split(folder: Path, image_size: int, classes: list[str] | None):
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
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
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        if not files:  # an empty class folder would silently add an output class
            raise DataError(f"{folder / name} holds no images (looked for "
                            f"{', '.join(IMG_EXTENSIONS)}): add images of class '{name}' or "
                            "remove the folder")
        for path in files:
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                    images.append(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))
            except Exception as exc:
                raise DataError(f"{path} could not be read as an image ({exc}); remove it") from exc
            labels.append(label)
    if not images:
        raise DataError(f"{folder} holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), classes
