"""scikit-learn's handwritten digits (1,797 real 8x8 images, 10 classes) as 3x32x32 uint8.

It ships inside scikit-learn, so the pipeline runs with no download. There is no official test
split: a stratified 20% chosen with a fixed seed (0, whatever trainer.seed is) is the test set, so
every run of every sweep is scored on the same images.
"""

from __future__ import annotations

import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def read_digits(image_size: int = 32):
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # pixel values are 0..16; scale to 0..255 and upsample smoothly to the CIFAR resolution
    images = torch.from_numpy(bunch.images.astype(np.float32) * (255.0 / 16.0)).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=TEST_FRACTION,
                                           stratify=bunch.target, random_state=SPLIT_SEED)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    names = [str(d) for d in range(10)]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], names
