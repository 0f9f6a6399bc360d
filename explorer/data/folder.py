"""Your own images: ``folder:PATH`` with one subfolder per class, and the CIFAR-10 verification subset.

    PATH/train/<class>/*.png|jpg|...     classes: the sorted subfolder names of train/
    PATH/test/<class>/*   (or PATH/val/) classes: a subset of those of train/

Every file is decoded by images.py, as Grad-CAM decodes a photo, so a file gives the same pixels
in both: any size and mode (grey, palette, CMYK, 16-bit), EXIF orientation applied, transparency
composited onto white, a file whose header claims more than ``MAX_PIXELS`` refused unread. Images
of any size down to 1x1 are read, then resized to a square of ``image_size`` pixels, bilinear
with antialiasing, ignoring the aspect ratio, as the CIFAR-10 images were made. Files that cannot
be decoded are skipped and counted in a warning; a class left with no image is an error. Hidden
files and files with other extensions are ignored.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from explorer.data.base import (
    FOLDER_PREFIX,
    ImageDataset,
    Progress,
    channel_stats,
    check_dataset_name,
    check_image_size,
    subset_and_resize,
)
from explorer.data.images import ImageError, load_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TEST_FOLDERS = ("test", "val")
SKIPPED_NAMED = 3  # how many skipped files the warning names


def load_folder(path: str | Path, image_size: int = 32, progress: Progress | None = None) -> ImageDataset:
    """Every image under ``path``/train and ``path``/test (or val); ``progress(done, total)`` in images."""
    check_image_size(image_size)
    check_dataset_name(FOLDER_PREFIX + str(path))  # an empty path gets load_dataset's message
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
    return ImageDataset(f"{FOLDER_PREFIX}{path}", x_train, y_train, x_test, y_test, classes, mean, std)


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
                             f"({len(paths)} file(s), none of which can be decoded)")
        labels += [classes.index(name)] * count
    return np.stack(images), np.asarray(labels, np.int64)


def _read_image(path: Path, size: int) -> np.ndarray | None:
    try:
        pixels = load_image(path, min_side=1)  # the decoder's default minimum is Grad-CAM's, not a data set's
    except ImageError:
        return None
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR), np.uint8)


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
