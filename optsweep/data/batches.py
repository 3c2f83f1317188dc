"""Batches cut from uint8 tensors that already sit on the training device, with augmentation and
normalisation done for the whole batch at once (no per-image Python, no DataLoader workers).

All randomness comes from one CPU ``torch.Generator`` so that a seed gives the same batches on every
device.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from optsweep.data import Split

CROP_PADDING = 4  # pixels of zero padding before the random crop, as in the standard CIFAR recipe


def batch_flip_lr(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(len(images), generator=generator) < 0.5
    flip = flip.to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


def batch_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and cut a random crop of the original size."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


class Normalize:
    """uint8 images -> float, resized to ``image_size``, normalised, in the model's memory layout."""

    def __init__(self, mean, std, image_size: int, device: torch.device, channels_last: bool):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
        self.image_size = image_size
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)


def train_batches(split: Split, batch_size: int, generator: torch.Generator,
                  augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled uint8 batches (the last one may be smaller)."""
    order = torch.randperm(len(split), generator=generator).to(split.labels.device)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        images = split.images[idx]
        if augment:
            images = batch_flip_lr(batch_crop(images, CROP_PADDING, generator), generator)
        yield images, split.labels[idx]


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.images[start:start + batch_size], split.labels[start:start + batch_size]
