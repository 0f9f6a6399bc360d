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

Decoding thousands of files takes seconds, and every run of a comparison reads the folder in its own
worker process, so the decoded arrays are kept in ``decoded-folders/`` of the data cache
(``$RESNET_EXPLORER_DATA``), under a key made of the folder's path, the image size and every file's
path, size and modification time: a changed, added or removed file decodes the folder again. Runs
that start at once wait for the one that decodes. A cache that cannot be written (a full disk, a
read-only home) is skipped and the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
import zipfile
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
    default_data_dir,
    subset_and_resize,
)
from explorer.data.images import ImageError, load_image

try:
    import fcntl  # POSIX: lets runs that start together wait for one decoder
except ImportError:  # pragma: no cover - Windows: each run decodes for itself
    fcntl = None

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
TEST_FOLDERS = ("test", "val")
SKIPPED_NAMED = 3  # how many skipped files the warning names
CACHE_FOLDER = "decoded-folders"
CACHE_FORMAT = 1  # raise it when decoding or resizing changes the pixels a file gives
CACHE_KEPT = 6  # decoded folders kept; the least recently read goes first


def load_folder(path: str | Path, image_size: int = 32, progress: Progress | None = None,
                use_cache: bool = True) -> ImageDataset:
    """Every image under ``path``/train and ``path``/test (or val); ``progress(done, total)`` in images.
    ``use_cache``: read and keep the decoded arrays in the data cache (see the module docstring)."""
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
    cache = _cache_path(root, image_size, train_files, test_files) if use_cache else None
    with _decoding_lock(cache):
        arrays = _read_cache(cache)
        if arrays is not None:
            if progress is not None:
                progress(total, total)
        else:
            counter = _Counter(total, progress)
            x_train, y_train = _read_split(train_dir, train_files, classes, image_size, counter)
            x_test, y_test = _read_split(test_dir, test_files, classes, image_size, counter)
            arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
                      "skipped": np.asarray([str(path) for path in counter.skipped], dtype=np.str_)}
            _write_cache(cache, arrays)
    skipped = [str(name) for name in arrays["skipped"]]
    if skipped:
        named = ", ".join(skipped[:SKIPPED_NAMED])
        more = f" and {len(skipped) - SKIPPED_NAMED} more" if len(skipped) > SKIPPED_NAMED else ""
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) in {root}: {named}{more}", stacklevel=2)
    x_train = arrays["x_train"]
    mean, std = channel_stats(x_train)
    return ImageDataset(f"{FOLDER_PREFIX}{path}", x_train, arrays["y_train"], arrays["x_test"], arrays["y_test"],
                        classes, mean, std)


def _cache_path(root: Path, image_size: int, *splits: dict[str, list[Path]]) -> Path:
    """The cache file for this folder as it is now: any file added, removed, replaced or touched changes it."""
    listing = []
    for files in splits:
        for name, paths in files.items():
            for path in paths:
                try:
                    stat = path.stat()
                except OSError:  # gone since it was listed: decoding will skip it
                    listing.append([name, str(path), -1])
                    continue
                listing.append([name, str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])
    key = json.dumps({"format": CACHE_FORMAT, "root": str(root.resolve()), "image_size": image_size,
                      "files": listing})
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return default_data_dir() / CACHE_FOLDER / f"{digest}-{image_size}px.npz"


@contextlib.contextmanager
def _decoding_lock(cache: Path | None):
    """Held while the folder is decoded for ``cache``, so the runs of a comparison decode it once."""
    if cache is None or fcntl is None:
        yield
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lock = open(cache.with_suffix(".lock"), "a")
    except OSError:  # no cache folder to be had: decode without one
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            pass
        yield


def _read_cache(cache: Path | None) -> dict[str, np.ndarray] | None:
    if cache is None or not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ("x_train", "y_train", "x_test", "y_test", "skipped")}
        os.utime(cache)  # recently read: kept when older ones are pruned
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # damaged or half-written by an older version: decode again and replace it
    return arrays


def _write_cache(cache: Path | None, arrays: dict[str, np.ndarray]) -> None:
    """Written under a temporary name and renamed, so a reader never sees half a file; a full disk skips it."""
    if cache is None:
        return
    temporary = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".writing-", suffix=".npz", dir=cache.parent)
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temporary, cache)
        temporary = None
        _prune(cache.parent)
    except OSError:
        pass
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.npz"), key=lambda path: path.stat().st_mtime, reverse=True)
    for stale in entries[CACHE_KEPT:]:
        with contextlib.suppress(OSError):
            stale.unlink()
            stale.with_suffix(".lock").unlink()


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
