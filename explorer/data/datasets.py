"""Data sets by name: ``load_dataset("shapes")``, ``"cifar10"``, ``"folder:PATH"`` and the 2-D toys.

    shapes        10 classes of shapes and textures on clutter, drawn here in seconds: the offline
                  default (shapes.py)
    shapes-easy   the same classes without the clutter: learnt within a minute on a CPU, which is
                  what the CPU presets use
    cifar10       CIFAR-10, the data set of the paper's sec. 4.2; downloaded once and cached
                  (cifar10.py)
    folder:PATH   your own images, PATH/train/<class>/* and PATH/test/<class>/* (or val/) (folder.py)
    spiral, circles, xor, gaussians
                  2-D points for the MLP playground (toy2d.py)

Images are uint8 (N, H, W, 3) numpy arrays, as CIFAR-10's python version and Pillow hold them; the
``DeviceLoader`` moves them to the device once and converts batches there. Mean and std come from
the training images, as the paper normalises with statistics of the training set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

DATASET_NAMES = ("shapes", "shapes-easy", "cifar10", "folder:PATH", "spiral", "circles", "xor", "gaussians")
POINT_DATASETS = ("spiral", "circles", "xor", "gaussians")
SHAPES_DATASETS = ("shapes", "shapes-easy")  # drawn here, at any image size
SHAPES_TRAIN, SHAPES_TEST = 50_000, 10_000
POINTS_TRAIN, POINTS_TEST = 1_000, 1_000
IMAGE_SIZE_RANGE = (8, 512)
RESIZE_CHUNK = 4096  # images resized at once: bounded memory for a set of any size
# Generated sets kept per arguments, because the runs of one comparison share a set. A 60,000-image
# set is 184 MB; the oldest goes first. The arrays are shared: callers must not write to them.
SHAPES_CACHE_SIZE = 4

Progress = Callable[[int, int], None]


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


def load_dataset(name: str, *, seed: int = 0, train_size: int | None = None, test_size: int | None = None,
                 image_size: int = 32, noise: float = 0.1, data_dir: str | Path | None = None,
                 progress: Progress | None = None) -> ImageDataset | PointDataset:
    """The data set ``name`` (see the module docstring).

    ``train_size``/``test_size``: how many to generate (shapes: 50,000/10,000, 2-D sets:
    1,000/1,000 by default), or a class-balanced subset, the same for a seed, of a set that is read.
    ``image_size`` applies to image sets (CIFAR-10 is resized when it is not 32), ``noise`` to the
    2-D sets, ``data_dir`` to cifar10 (where it is or goes). ``progress(done, total)`` counts bytes
    while CIFAR-10 downloads and images while a set is drawn or read.
    """
    name = str(name).strip()
    key = name.lower()
    for size, label in ((train_size, "train_size"), (test_size, "test_size")):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"{label} must be a whole number of at least 1, got {size!r}")
    if key in POINT_DATASETS:
        from explorer.data.toy2d import make_points

        return make_points(key, seed=seed, train_size=train_size or POINTS_TRAIN,
                           test_size=test_size or POINTS_TEST, noise=noise)
    check_image_size(image_size)
    if key in SHAPES_DATASETS:
        return _shapes(seed, train_size or SHAPES_TRAIN, test_size or SHAPES_TEST, image_size, progress,
                       clutter=key == "shapes")
    # Imported when asked for: cifar10.py imports torchvision, which takes seconds.
    if key == "cifar10":
        from explorer.data.cifar10 import load_cifar10

        dataset = load_cifar10(data_dir=data_dir, progress=progress)
    elif key.startswith("folder:"):
        from explorer.data.folder import load_folder

        dataset = load_folder(name[len("folder:"):], image_size=image_size, progress=progress)
    else:
        raise ValueError(f"unknown data set {name!r}; valid: shapes, shapes-easy (built in, offline), cifar10, "
                         f"folder:PATH, {', '.join(POINT_DATASETS)}")
    return subset_and_resize(dataset, seed=seed, train_size=train_size, test_size=test_size, image_size=image_size)


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


_shapes_cache: dict[tuple[int, int, int, int, bool], ImageDataset] = {}
_shapes_lock = threading.Lock()


def _shapes(seed: int, train_size: int, test_size: int, image_size: int, progress: Progress | None,
            clutter: bool = True) -> ImageDataset:
    # Generated, not downloaded: cached per arguments because several runs of a comparison use
    # the same set. Train and test come from independent child streams of the seed.
    from explorer.data.shapes import SHAPE_CLASSES, generate_shapes

    key = (seed, train_size, test_size, image_size, clutter)
    with _shapes_lock:
        if key in _shapes_cache:
            return _shapes_cache[key]
    total = train_size + test_size
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    train = generate_shapes(train_size, train_seed, image_size, clutter=clutter,
                            progress=progress and (lambda done, _: progress(done, total)))
    test = generate_shapes(test_size, test_seed, image_size, clutter=clutter,
                           progress=progress and (lambda done, _: progress(train_size + done, total)))
    mean, std = channel_stats(train.images)
    dataset = ImageDataset("shapes" if clutter else "shapes-easy", train.images, train.labels, test.images,
                           test.labels, list(SHAPE_CLASSES), mean, std, train.boxes, test.boxes)
    with _shapes_lock:
        _shapes_cache[key] = dataset
        while len(_shapes_cache) > SHAPES_CACHE_SIZE:
            del _shapes_cache[next(iter(_shapes_cache))]
    return dataset
