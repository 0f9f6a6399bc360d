"""Your own images: ``folder:PATH`` with one subfolder per class, and the CIFAR-10 verification subset.

    PATH/train/<class>/*.png|jpg|...     classes: the sorted subfolder names of train/
    PATH/test/<class>/*   (or PATH/val/) classes: a subset of those of train/

Any size and mode (grey, palette, RGBA, CMYK) is read, converted to RGB and resized to a square of
``image_size`` pixels, bilinear with antialiasing, ignoring the aspect ratio, as the CIFAR-10
images were made. Files that Pillow cannot read are skipped and counted in a warning; a class left
with no image is an error. Hidden files and files with other extensions are ignored.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from explorer.data.datasets import ImageDataset, channel_stats, check_image_size, subset_and_resize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TEST_FOLDERS = ("test", "val")
SKIPPED_NAMED = 3  # how many skipped files the warning names

Progress = Callable[[int, int], None]


def load_folder(path: str | Path, image_size: int = 32, progress: Progress | None = None) -> ImageDataset:
    """Every image under ``path``/train and ``path``/test (or val); ``progress(done, total)`` in images."""
    check_image_size(image_size)
    if not str(path).strip():
        raise ValueError("folder: needs a path, e.g. folder:/data/flowers")
    root = Path(str(path).strip()).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise ValueError(
            f"image folder {str(root)!r} has no train/ subfolder (expected train/<class>/ and test/<class>/)"
        )
    test_dir = next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), None)
    if test_dir is None:
        raise ValueError(f"image folder {str(root)!r} has no test/ or val/ subfolder beside train/")
    classes = _class_names(train_dir)
    test_classes = _class_names(test_dir)
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise ValueError(f"{test_dir} has classes that train/ lacks: {', '.join(unknown)}; "
                         f"train/ has {', '.join(classes)}")
    train_files = _files(train_dir, classes)
    test_files = _files(test_dir, test_classes)
    total = sum(len(files) for files in train_files.values()) + sum(len(files) for files in test_files.values())
    counter = _Counter(total, progress)
    x_train, y_train = _read_split(train_dir, train_files, classes, image_size, counter)
    x_test, y_test = _read_split(test_dir, test_files, classes, image_size, counter)
    if counter.skipped:
        named = ", ".join(str(path) for path in counter.skipped[:SKIPPED_NAMED])
        more = f" and {len(counter.skipped) - SKIPPED_NAMED} more" if len(counter.skipped) > SKIPPED_NAMED else ""
        warnings.warn(f"skipped {len(counter.skipped)} unreadable image file(s) in {root}: {named}{more}", stacklevel=2)
    mean, std = channel_stats(x_train)
    return ImageDataset(f"folder:{path}", x_train, y_train, x_test, y_test, classes, mean, std)


def _class_names(folder: Path) -> list[str]:
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ValueError(f"{folder} has no class subfolders; put the images of each class in {folder}/<class>/")
    return names


def _files(folder: Path, classes: list[str]) -> dict[str, list[Path]]:
    files = {
        name: sorted(
            path for path in (folder / name).rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
        )
        for name in classes
    }
    empty = [name for name, paths in files.items() if not paths]
    if empty:
        raise ValueError(f"{folder} has no images ({', '.join(IMAGE_EXTENSIONS)}) for class(es) {', '.join(empty)}")
    return files


class _Counter:
    def __init__(self, total: int, progress: Progress | None):
        self.total, self.done, self.progress, self.skipped = total, 0, progress, []

    def step(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _read_split(folder: Path, files: dict[str, list[Path]], classes: list[str], size: int,
                counter: _Counter) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name, paths in files.items():
        count = 0
        for path in paths:
            image = _read_image(path, size)
            counter.step()
            if image is None:
                counter.skipped.append(path)
                continue
            images.append(image)
            count += 1
        if count == 0:
            raise ValueError(f"no readable image for class {name!r} in {folder / name} "
                             f"({len(paths)} file(s), none of which Pillow can open)")
        labels += [classes.index(name)] * count
    return np.stack(images), np.asarray(labels, np.int64)


def _read_image(path: Path, size: int) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def load_npz_subset(path: str | Path, *, seed: int = 0, train_size: int | None = None, test_size: int | None = None,
                    image_size: int | None = None) -> ImageDataset:
    """The CIFAR-10 verification subset: a .npz with x_train, y_train, x_test, y_test (uint8 HWC) and label_names.

    For benchmarks against real images (bench/); the file stays outside the repository.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"no such .npz file: {path}")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test", "label_names") if key not in data]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(missing)}; expected x_train, y_train, x_test, y_test, label_names"
            )
        arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
        classes = [str(name) for name in data["label_names"]]
    x_train = np.ascontiguousarray(arrays["x_train"], np.uint8)
    mean, std = channel_stats(x_train)
    dataset = ImageDataset("cifar10-subset", x_train, arrays["y_train"].astype(np.int64),
                           np.ascontiguousarray(arrays["x_test"], np.uint8), arrays["y_test"].astype(np.int64),
                           classes, mean, std)
    return subset_and_resize(dataset, seed=seed, train_size=train_size, test_size=test_size, image_size=image_size)
