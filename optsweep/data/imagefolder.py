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


def _read_split(folder: Path, image_size: int, classes: list[str] | None):
    from PIL import Image
    from torchvision.datasets.folder import IMG_EXTENSIONS

    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{folder} has class folders {unknown} that train/ does not have")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMG_EXTENSIONS)
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
