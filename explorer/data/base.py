"""What every data set shares: the two data-set types, their names, and the helpers loaders use.

The loaders (shapes.py, cifar10.py, folder.py, toy2d.py) import only this module, and datasets.py
imports the loaders to look a set up by name, so the imports point one way.

Images are uint8 (N, H, W, 3) numpy arrays, as CIFAR-10's python version and Pillow hold them; the
``DeviceLoader`` moves them to the device once and converts batches there. Mean and std come from
the training images, as the paper normalises with statistics of the training set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# Every data-set name, here and nowhere else; datasets.py's docstring says what each one is.
SHAPES, SHAPES_EASY = "shapes", "shapes-easy"  # drawn by shapes.py, with and without clutter
SHAPES_DATASETS = (SHAPES, SHAPES_EASY)
CIFAR10 = "cifar10"
FOLDER_PREFIX = "folder:"  # followed by the folder's path
POINT_DATASETS = ("spiral", "circles", "xor", "gaussians")  # 2-D points (toy2d.py)
BUILT_IN_IMAGE_DATASETS = (*SHAPES_DATASETS, CIFAR10)  # at any image size, with BUILT_IN_IMAGE_CLASSES each
BUILT_IN_IMAGE_CLASSES = 10
DATASET_NAMES = (*BUILT_IN_IMAGE_DATASETS, f"{FOLDER_PREFIX}PATH", *POINT_DATASETS)
# For a flag's or a widget's help: the image sets a training run can use.
IMAGE_DATASETS_HELP = f"{SHAPES}, {SHAPES_EASY} (no clutter), {CIFAR10} or {FOLDER_PREFIX}PATH"

IMAGE_SIZE_RANGE = (8, 512)
DATA_DIR_ENV = "RESNET_EXPLORER_DATA"  # where downloads and decoded-image caches go
DEFAULT_DATA_DIR = Path("~/.cache/resnet-explorer/data")
RESIZE_CHUNK = 4096  # images resized at once: bounded memory for a set of any size

Progress = Callable[[int, int], None]


def default_data_dir() -> Path:
    """The cache folder: CIFAR-10's download and the decoded image folders (``$RESNET_EXPLORER_DATA``)."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def check_dataset_name(name: str) -> str:
    """``name`` as ``load_dataset`` reads it: stripped, in lower case but for a folder's path.

    Raises the one ValueError that lists the valid names, or says that ``folder:`` needs its path.
    Nothing is read: a folder that does not exist is ``load_dataset``'s error.
    """
    name = str(name).strip()
    key = name.lower()
    if key.startswith(FOLDER_PREFIX):
        if not name[len(FOLDER_PREFIX):].strip():
            raise ValueError(f"{FOLDER_PREFIX} needs a path, e.g. {FOLDER_PREFIX}/data/flowers")
        return FOLDER_PREFIX + name[len(FOLDER_PREFIX):]
    if key in BUILT_IN_IMAGE_DATASETS or key in POINT_DATASETS:
        return key
    raise ValueError(f"unknown data set {name!r}; valid: {', '.join(SHAPES_DATASETS)} (built in, offline), {CIFAR10}, "
                     f"{FOLDER_PREFIX}PATH, {', '.join(POINT_DATASETS)}")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value; compare by identity
class ImageDataset:
    name: str
    x_train: np.ndarray  # uint8 (N, H, W, 3), RGB
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray  # uint8 (M, H, W, 3)
    y_test: np.ndarray  # int64 (M,)
    classes: list[str]
    mean: tuple[float, float, float]  # per channel in 0..1, from x_train
    std: tuple[float, float, float]
    boxes_train: np.ndarray | None = None  # int32 (N, 4): row0, col0, row1, col1 (exclusive) of the object
    boxes_test: np.ndarray | None = None

    def __post_init__(self):
        for split, images, labels, boxes in (
            ("train", self.x_train, self.y_train, self.boxes_train),
            ("test", self.x_test, self.y_test, self.boxes_test),
        ):
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
                raise ValueError(
                    f"{self.name}: x_{split} must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
                )
            if labels.shape != (len(images),):
                raise ValueError(f"{self.name}: y_{split} has shape {labels.shape}, expected ({len(images)},)")
            if boxes is not None and boxes.shape != (len(images), 4):
                raise ValueError(f"{self.name}: boxes_{split} has shape {boxes.shape}, expected ({len(images)}, 4)")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"{self.name}: train images are {self.x_train.shape[1:]}, test {self.x_test.shape[1:]}")

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True, eq=False)
class PointDataset:
    name: str
    x_train: np.ndarray  # float32 (N, 2), about [-1, 1]^2 plus noise (toy2d.py)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in 0..1, exact, from a 256-bin histogram of each channel.

    One pass over the bytes and no float copy: 0.6 s for 50,000 32x32 images where summing float64
    slices took 3 s.
    """
    if len(images) == 0:
        raise ValueError("cannot compute the mean and std of an empty training set")
    values = np.arange(256, dtype=np.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[-1]):
        share = np.bincount(images[..., channel].ravel(), minlength=256) / images[..., channel].size
        mean = float(share @ values)
        means.append(mean)
        stds.append(float(np.sqrt(max(share @ values**2 - mean * mean, 1e-12))))
    return tuple(means), tuple(stds)


def subsample(x: np.ndarray, y: np.ndarray, size: int | None, seed: int, boxes=None):
    """A seeded subset of ``size`` items with the classes as even as the data allow.

    All of them when ``size`` is None or not smaller than the set. Shuffle, rank every item within
    its class and take the lowest ranks first, so 1,000 CIFAR-10 images hold 100 of each class;
    kept in the source's order.
    """
    if size is None or size >= len(x):
        return x, y, boxes
    if size < 1:
        raise ValueError(f"a data set size must be at least 1, got {size}")
    order = np.random.default_rng(seed).permutation(len(y))
    shuffled = y[order]
    by_class = np.argsort(shuffled, kind="stable")
    first_of_class = np.searchsorted(shuffled[by_class], shuffled[by_class])
    rank = np.empty(len(y), np.int64)
    rank[by_class] = np.arange(len(y)) - first_of_class
    keep = np.sort(order[np.argsort(rank, kind="stable")[:size]])
    return x[keep], y[keep], None if boxes is None else boxes[keep]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) to (N, size, size, 3): bilinear with antialiasing, as Pillow resizes."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), np.uint8)
    for start in range(0, len(images), RESIZE_CHUNK):
        batch = torch.from_numpy(images[start : start + RESIZE_CHUNK]).permute(0, 3, 1, 2).float()
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + RESIZE_CHUNK] = batch.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def check_image_size(image_size: int) -> int:
    low, high = IMAGE_SIZE_RANGE
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not low <= image_size <= high:
        raise ValueError(f"image_size must be a whole number of pixels from {low} to {high}, got {image_size!r}")
    return image_size


def subset_and_resize(dataset: ImageDataset, *, seed: int = 0, train_size: int | None = None,
                      test_size: int | None = None, image_size: int | None = None) -> ImageDataset:
    """Subsample and resize a loaded set; mean and std are recomputed when the images change."""
    x_train, y_train, boxes_train = subsample(dataset.x_train, dataset.y_train, train_size, seed, dataset.boxes_train)
    x_test, y_test, boxes_test = subsample(dataset.x_test, dataset.y_test, test_size, seed + 1, dataset.boxes_test)
    if image_size is not None and image_size != dataset.image_size:
        if boxes_train is not None or boxes_test is not None:
            raise ValueError(f"{dataset.name}: resizing a set with object boxes is not supported")
        x_train, x_test = resize_images(x_train, image_size), resize_images(x_test, image_size)
    if x_train is dataset.x_train and x_test is dataset.x_test:
        return dataset
    mean, std = channel_stats(x_train)
    return ImageDataset(dataset.name, x_train, y_train, x_test, y_test, dataset.classes, mean, std,
                        boxes_train, boxes_test)
