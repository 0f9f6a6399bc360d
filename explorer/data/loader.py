"""A loader that keeps a data set on the device and augments whole batches there.

The images live on the device as uint8 (a CIFAR-sized set is 150 MB as uint8, 600 MB as float),
and each batch is cropped, flipped and normalised there with tensor ops: the paper's augmentation
(4-pixel zero padding, a random 32x32 crop, a random horizontal flip; sec. 4.2) with no per-image
Python in the training loop, as airbench does.

Randomness comes from the loader's own CPU ``torch.Generator``: the same seed gives the same order
and the same crops on any device. An epoch's order, offsets and flips are drawn at once and copied
to the device once, because a copy from pageable host memory waits for the GPU to finish its
queue; once per batch, that would stop the host from queueing work ahead.

2-D point data (a float array, (N, 2)) is moved to the device as float32 and passed through
unchanged: ``mean``, ``std`` and ``augment`` apply to uint8 images only.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

PAD = 4


def random_crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Crop each zero-padded image at its (row, col) offset in [0, 2*pad] and mirror where ``flips``.

    ``images``: (B, C, H, W); ``offsets``: (B, 2) long; ``flips``: (B,) bool. One gather for the
    whole batch: the rows and columns of every crop are index grids built from the offsets, and a
    flip is a crop whose columns run backwards.
    """
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[:, 1, None] + torch.arange(width, device=images.device)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 moves the channel dim last: (B, H, W, C).
    cropped = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2)


class DeviceLoader:
    """Batches of (normalised float32 NCHW images, int64 labels) from a data set held on ``device``.

    ``images``: uint8 (N, H, W, C) as numpy or torch, or float (N, D) points. Iterating gives one
    epoch; ``drop_last`` drops a final partial batch, but a set smaller than one batch still gives
    that one batch. ``batch(indices)`` gives fixed, un-augmented batches (probes, evaluation).
    """

    def __init__(self, images, labels, batch_size: int, device: torch.device | str = "cpu",
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), augment: bool = False, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0, channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        self.points = images.dtype != torch.uint8
        if self.points:
            self.images = images.to(self.device, torch.float32)
        else:
            if images.ndim != 4 or images.shape[-1] not in (1, 3):
                raise ValueError(f"images must be uint8 (N, H, W, C) with C 1 or 3, got {tuple(images.shape)}")
            self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)  # uint8 NCHW
        self.labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels,
                                      dtype=torch.long).to(self.device)
        if len(self.images) != len(self.labels) or len(self.images) == 0:
            raise ValueError(f"need as many labels as images, and at least one: {len(self.images)} vs {len(self.labels)}")
        self.batch_size = batch_size
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        channels = self.images.shape[1]
        if not self.points and (self.mean.numel() != channels or self.std.numel() != channels):
            raise ValueError(f"mean and std need one value per channel ({channels})")
        # (x / 255 - mean) / std as one multiply and one subtract.
        self.scale, self.shift = 1 / (255 * self.std), self.mean / self.std
        self.augment = augment and not self.points
        self.shuffle, self.drop_last, self.channels_last = shuffle, drop_last, channels_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        count = len(self.images)
        if self.drop_last and count >= self.batch_size:
            return count // self.batch_size
        return -(-count // self.batch_size)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.points:
            return images
        out = images.float() * self.scale - self.shift
        return out.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The un-augmented, normalised batch at ``indices`` (a fixed probe batch, evaluation)."""
        indices = torch.as_tensor(indices, dtype=torch.long).to(self.device)
        return self._prepare(self.images[indices]), self.labels[indices]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count, size = len(self.images), self.batch_size
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        order = order.to(self.device)
        if self.augment:
            offsets = torch.randint(0, 2 * PAD + 1, (count, 2), generator=self.generator).to(self.device)
            flips = (torch.rand(count, generator=self.generator) < 0.5).to(self.device)
        for number in range(len(self)):
            part = slice(number * size, (number + 1) * size)
            indices = order[part]
            images = self.images[indices]
            if self.augment:
                images = random_crop_flip(images, offsets[part], flips[part])
            yield self._prepare(images), self.labels[indices]
