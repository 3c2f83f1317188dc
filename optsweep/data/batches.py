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


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose ``flip`` (bool, N, on the images' device) is set."""
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def crop_at(images: torch.Tensor, padding: int, shifts: torch.Tensor) -> torch.Tensor:
    """Zero-pad each image by ``padding`` and cut the crop whose top-left corner is (dy, dx) =
    ``shifts[:, i]`` in the padded image (int64, 2 x N, on the images' device)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy, dx = shifts[0], shifts[1]
    rows = (dy.view(n, 1) + torch.arange(h, device=images.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=images.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    channel = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


class Normalize:
    """uint8 images -> float, resized to ``image_size``, normalised, in the model's memory
    layout."""

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


def trained_count(n: int, batch_size: int, min_batch: int = 1) -> int:
    """How many of ``n`` images an epoch trains on: all, but a last batch smaller than
    ``min_batch`` (one image, for a model with batch norm) is left out of that epoch."""
    rest = n % batch_size
    return n - rest if 0 < rest < min_batch else n


def train_batches(split: Split, batch_size: int, generator: torch.Generator, augment: bool,
                  min_batch: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled uint8 batches (the last one may be smaller, and is left out when
    smaller than ``min_batch``: see ``trained_count``; which images it holds changes every epoch).

    The epoch's random numbers (order, crop offsets, flips) are drawn up front and moved to the
    device in one copy: a copy from pageable CPU memory to a GPU waits for the GPU's queued work,
    so drawing them batch by batch would stall the GPU at every step.
    """
    n = len(split)
    draws = [torch.randperm(n, generator=generator)]
    if augment:
        draws += [*torch.randint(0, 2 * CROP_PADDING + 1, (2, n), generator=generator),
                  (torch.rand(n, generator=generator) < 0.5).long()]
    draws = torch.stack(draws).to(split.labels.device)  # one host-to-device copy per epoch
    order = draws[0]
    for start in range(0, trained_count(n, batch_size, min_batch), batch_size):
        idx = order[start:start + batch_size]
        images = split.images[idx]
        if augment:
            shifts, flip = draws[1:3, start:start + batch_size], draws[3, start:start + batch_size]
            images = flip_where(crop_at(images, CROP_PADDING, shifts), flip.bool())
        yield images, split.labels[idx]


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.images[start:start + batch_size], split.labels[start:start + batch_size]
