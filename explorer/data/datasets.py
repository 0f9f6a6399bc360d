"""Data sets by name: ``load_dataset("shapes")``, ``"cifar10"``, ``"folder:PATH"`` and the 2-D toys.

(Note for whoever extends explorer/data: this registry was written by the lead engineer to the
agreed interface; cifar10.py and folder.py plug in through ``load_cifar10`` and ``load_folder``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

DATASET_NAMES = ("shapes", "cifar10", "folder:PATH", "spiral", "circles", "xor", "gaussians")
POINT_DATASETS = ("spiral", "circles", "xor", "gaussians")
SHAPES_TRAIN, SHAPES_TEST = 50_000, 10_000


@dataclass(frozen=True, eq=False)
class ImageDataset:
    name: str
    x_train: np.ndarray  # uint8 (N, H, W, 3), RGB
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: tuple[float, float, float]  # per channel in 0..1, from x_train
    std: tuple[float, float, float]
    boxes_train: np.ndarray | None = None  # int32 (N, 4): row0, col0, row1, col1 (exclusive) of the object
    boxes_test: np.ndarray | None = None

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True, eq=False)
class PointDataset:
    name: str
    x_train: np.ndarray  # float32 (N, 2)
    y_train: np.ndarray  # int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in 0..1, computed in slices so a big set needs no float copy."""
    count = len(images)
    total = np.zeros(3)
    squares = np.zeros(3)
    for start in range(0, count, 8192):
        part = images[start:start + 8192].reshape(-1, 3).astype(np.float64) / 255
        total += part.sum(0)
        squares += (part * part).sum(0)
    pixels = count * images.shape[1] * images.shape[2]
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean * mean, 1e-12))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def subsample(x: np.ndarray, y: np.ndarray, size: int | None, seed: int, boxes=None):
    """A seeded random subset of ``size`` items (all of them when None or larger)."""
    if size is None or size >= len(x):
        return x, y, boxes
    if size < 1:
        raise ValueError(f"a data set size must be at least 1, got {size}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:size])
    return x[keep], y[keep], None if boxes is None else boxes[keep]


def load_dataset(name: str, *, seed: int = 0, train_size: int | None = None, test_size: int | None = None,
                 image_size: int = 32, noise: float = 0.1, data_dir: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ImageDataset | PointDataset:
    """The data set ``name``; generated ones are cached per arguments, so a second run starts at once."""
    name = str(name).strip()
    for size, label in ((train_size, "train_size"), (test_size, "test_size")):
        if size is not None and size < 1:
            raise ValueError(f"{label} must be at least 1, got {size}")
    if name == "shapes":
        return _shapes(seed, train_size or SHAPES_TRAIN, test_size or SHAPES_TEST, image_size)
    if name in POINT_DATASETS:
        from explorer.data.toy2d import make_points

        return make_points(name, seed=seed, train_size=train_size or 1000, test_size=test_size or 1000, noise=noise)
    if name == "cifar10":
        from explorer.data.cifar10 import load_cifar10

        dataset = load_cifar10(data_dir=data_dir, progress=progress)
    elif name.startswith("folder:"):
        from explorer.data.folder import load_folder

        dataset = load_folder(name.removeprefix("folder:"), image_size=image_size)
    else:
        raise ValueError(f"unknown data set {name!r}; valid: shapes (built in, offline), cifar10, folder:PATH, "
                         f"{', '.join(POINT_DATASETS)}")
    x_train, y_train, _ = subsample(dataset.x_train, dataset.y_train, train_size, seed)
    x_test, y_test, _ = subsample(dataset.x_test, dataset.y_test, test_size, seed + 1)
    if x_train is dataset.x_train and x_test is dataset.x_test:
        return dataset
    return ImageDataset(dataset.name, x_train, y_train, x_test, y_test, dataset.classes, dataset.mean, dataset.std)


@lru_cache(maxsize=4)
def _shapes(seed: int, train_size: int, test_size: int, image_size: int) -> ImageDataset:
    # Generated, not downloaded: cached per arguments because several runs of a comparison use
    # the same set. Train and test come from independent child streams of the seed.
    from explorer.data.shapes import SHAPE_CLASSES, generate_shapes

    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    train = generate_shapes(train_size, train_seed, image_size)
    test = generate_shapes(test_size, test_seed, image_size)
    mean, std = channel_stats(train.images)
    return ImageDataset("shapes", train.images, train.labels, test.images, test.labels, list(SHAPE_CLASSES), mean,
                        std, train.boxes, test.boxes)
