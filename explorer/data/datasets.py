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

The types, the names and the helpers every loader uses are in base.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from explorer.data.base import (
    CIFAR10,
    FOLDER_PREFIX,
    POINT_DATASETS,
    SHAPES,
    SHAPES_DATASETS,
    SHAPES_EASY,
    ImageDataset,
    PointDataset,
    Progress,
    channel_stats,
    check_dataset_name,
    check_image_size,
    subset_and_resize,
)
from explorer.data.cifar10 import load_cifar10
from explorer.data.folder import load_folder
from explorer.data.shapes import SHAPE_CLASSES, generate_shapes
from explorer.data.toy2d import make_points

SHAPES_TRAIN, SHAPES_TEST = 50_000, 10_000
POINTS_TRAIN, POINTS_TEST = 1_000, 1_000
# Generated sets kept per arguments, because the runs of one comparison share a set. A 60,000-image
# set is 184 MB; the oldest goes first. The arrays are shared: callers must not write to them.
SHAPES_CACHE_SIZE = 4


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
    for size, label in ((train_size, "train_size"), (test_size, "test_size")):
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"{label} must be a whole number of at least 1, got {size!r}")
    key = check_dataset_name(name)
    if key in POINT_DATASETS:
        return make_points(key, seed=seed, train_size=train_size or POINTS_TRAIN,
                           test_size=test_size or POINTS_TEST, noise=noise)
    check_image_size(image_size)
    if key in SHAPES_DATASETS:
        return _shapes(seed, train_size or SHAPES_TRAIN, test_size or SHAPES_TEST, image_size, progress,
                       clutter=key == SHAPES)
    if key == CIFAR10:
        dataset = load_cifar10(data_dir=data_dir, progress=progress)
    else:
        dataset = load_folder(key[len(FOLDER_PREFIX):], image_size=image_size, progress=progress)
    return subset_and_resize(dataset, seed=seed, train_size=train_size, test_size=test_size, image_size=image_size)


_shapes_cache: dict[tuple[int, int, int, int, bool], ImageDataset] = {}
_shapes_lock = threading.Lock()


def _shapes(seed: int, train_size: int, test_size: int, image_size: int, progress: Progress | None,
            clutter: bool = True) -> ImageDataset:
    # Generated, not downloaded: cached per arguments because several runs of a comparison use
    # the same set. Train and test come from independent child streams of the seed.
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
    dataset = ImageDataset(SHAPES if clutter else SHAPES_EASY, train.images, train.labels, test.images,
                           test.labels, list(SHAPE_CLASSES), mean, std, train.boxes, test.boxes)
    with _shapes_lock:
        _shapes_cache[key] = dataset
        while len(_shapes_cache) > SHAPES_CACHE_SIZE:
            del _shapes_cache[next(iter(_shapes_cache))]
    return dataset


def test_examples(name: str, per_class: int = 8, data_dir: str | Path | None = None,
                  image_size: int = 32) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The first ``per_class`` test images of each class of an image set, as (index in the test
    set, HWC uint8 image), class by class in the set's order: what a page offers to pick from."""
    dataset = load_dataset(name, data_dir=data_dir, image_size=image_size)
    if isinstance(dataset, PointDataset):
        raise ValueError(f"{name} is a set of 2-D points, not of images")
    examples: dict[str, list[tuple[int, np.ndarray]]] = {label: [] for label in dataset.classes}
    for index, label in enumerate(dataset.y_test.tolist()):
        chosen = examples[dataset.classes[label]]
        if len(chosen) < per_class:
            image = dataset.x_test[index].copy()
            image.flags.writeable = False  # shared by every session that shows it
            chosen.append((index, image))
        if all(len(chosen) >= per_class for chosen in examples.values()):
            break
    return examples
