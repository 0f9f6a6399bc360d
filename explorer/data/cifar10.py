"""CIFAR-10 (Krizhevsky, 2009), the data set of the paper's sec. 4.2: 50,000 + 10,000 32x32 images.

The python version, downloaded once into a cache folder (``$RESNET_EXPLORER_DATA``, else
``~/.cache/resnet-explorer/data``) or read from a folder the user names, which holds either
``cifar-10-batches-py/`` or the archive ``cifar-10-python.tar.gz``. The URL, file names and md5
are torchvision's (``torchvision.datasets.CIFAR10``); the URL can be pointed elsewhere, a mirror
or a test server, with ``RESNET_EXPLORER_CIFAR10_URL`` (and ``RESNET_EXPLORER_CIFAR10_MD5``).

Our own small downloader reports progress and writes to a ``.part`` file that is renamed only once
its md5 is right, so an interrupted or corrupt download never leaves a file under the final name.
The batches are the pickled dicts torchvision's ``CIFAR10`` reads; we read them the same way rather
than through ``CIFAR10(root, download=False)``, whose integrity check compares every batch with the
md5 of the original and so refuses any other archive with the same layout (a mirror's repack, or
the tests' small fake). Pickles run code when loaded: read only archives you trust, as with
torchvision.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from explorer.data.base import CIFAR10, ImageDataset, Progress, channel_stats, default_data_dir
from explorer.data.base import DATA_DIR_ENV, DEFAULT_DATA_DIR  # noqa: F401 - their old home, still imported from here
from explorer.download import check_reachable, fetch

URL_ENV = "RESNET_EXPLORER_CIFAR10_URL"
MD5_ENV = "RESNET_EXPLORER_CIFAR10_MD5"
# torchvision.datasets.CIFAR10's url, filename, tgz_md5, base_folder, train_list, test_list and meta,
# written out because importing torchvision takes seconds; a test checks that they still agree.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCHES = ("test_batch",)
META, META_KEY = "batches.meta", "label_names"
BATCH_FILES = (*TRAIN_BATCHES, *TEST_BATCHES, META)
DOWNLOAD_CHUNK = 1 << 20  # bytes read per call: a progress update every MiB
TIMEOUT_SECONDS = 30.0  # without a byte for this long, the download counts as offline


IF_OFFLINE = (f"instead use the built-in, offline 'shapes-easy' or 'shapes' data set, 'folder:PATH' for your own "
              f"images, or 'cifar10' with data_dir set to a folder that holds {ARCHIVE} or {FOLDER}/")


def load_cifar10(data_dir: str | Path | None = None, *, url: str | None = None, md5: str | None = None,
                 progress: Progress | None = None, timeout: float = TIMEOUT_SECONDS) -> ImageDataset:
    """All of CIFAR-10 from ``data_dir`` (default: the cache), downloading it there if it is absent.

    ``data_dir`` may hold ``cifar-10-batches-py/``, be that folder itself, or hold the archive,
    which is then unpacked beside it. ``progress(done_bytes, total_bytes)`` follows a download;
    ``total_bytes`` is 0 when the server does not say.
    """
    url = url or os.environ.get(URL_ENV) or URL
    md5 = md5 or os.environ.get(MD5_ENV) or ARCHIVE_MD5
    root = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    if data_dir is not None and not root.is_dir():
        raise ValueError(f"CIFAR-10 data_dir {str(root)!r} is not a folder; name the folder that holds "
                         f"{FOLDER}/ or {ARCHIVE}, or leave data_dir out to download into {default_data_dir()}")
    folder = find_batches(root)
    if folder is None:
        archive = root / ARCHIVE
        if archive.exists():
            check_md5(archive, md5)
        else:
            root.mkdir(parents=True, exist_ok=True)
            download(url, archive, md5, progress=progress, timeout=timeout)
        folder = extract(archive, root)
    return read_batches(folder)


def on_machine(data_dir: str | Path | None = None) -> bool:
    """Whether CIFAR-10 can be read without the network: its batches or its archive in the folder."""
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return find_batches(root) is not None or (root / ARCHIVE).is_file()


def check_obtainable(data_dir: str | Path | None = None, *, url: str | None = None, timeout: float = 5.0) -> None:
    """Refuse, before a run is created, CIFAR-10 that is neither here nor downloadable (offline)."""
    root = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    if data_dir is not None and not root.is_dir():
        raise ValueError(f"CIFAR-10 data_dir {str(root)!r} is not a folder; name the folder that holds "
                         f"{FOLDER}/ or {ARCHIVE}, or leave data_dir out to download into {default_data_dir()}")
    if find_batches(root) is not None or (root / ARCHIVE).exists():
        return
    check_reachable(url or os.environ.get(URL_ENV) or URL, what="CIFAR-10", timeout=timeout,
                    if_offline=IF_OFFLINE)


def find_batches(root: Path) -> Path | None:
    """``root/cifar-10-batches-py`` or ``root`` itself when it holds every batch, else None."""
    for folder in (root / FOLDER, root):
        if all((folder / name).is_file() for name in BATCH_FILES):
            return folder
    return None


def download(url: str, destination: Path, md5: str, *, progress: Progress | None = None,
             timeout: float = TIMEOUT_SECONDS) -> Path:
    """Fetch ``url`` into ``destination`` through ``destination.part``; only a verified file is renamed."""
    return fetch(url, destination, what="CIFAR-10", algorithm="md5", expected=md5, progress=progress,
                 timeout=timeout,
                 if_offline=IF_OFFLINE)


def check_md5(path: Path, md5: str) -> None:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(DOWNLOAD_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != md5.lower():
        raise ValueError(f"{path} has md5 {digest.hexdigest()}, expected {md5}: it is damaged or another file; "
                         "delete it to download it again")


def extract(archive: Path, root: Path) -> Path:
    """Unpack the batches into ``root/cifar-10-batches-py`` and return that folder.

    Only the seven known files are written, by name, so a hostile archive cannot write elsewhere;
    they go to a temporary folder that is renamed when complete.
    """
    staging = Path(tempfile.mkdtemp(prefix=".cifar-10-unpacking-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if member.isfile() and path.parent.name == FOLDER and path.name in BATCH_FILES:
                    with tar.extractfile(member) as source, open(staging / path.name, "wb") as target:
                        shutil.copyfileobj(source, target)
        missing = [name for name in BATCH_FILES if not (staging / name).is_file()]
        if missing:
            raise ValueError(f"{archive} is not the CIFAR-10 python archive: no {FOLDER}/{missing[0]} in it")
        folder = root / FOLDER
        if not find_batches(folder):  # another process may have finished first
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
        return folder
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ValueError(f"cannot unpack {archive}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_batches(folder: Path) -> ImageDataset:
    """The ImageDataset in the pickled batches of ``folder`` (HWC uint8, int64 labels)."""
    x_train, y_train = _read(folder, TRAIN_BATCHES)
    x_test, y_test = _read(folder, TEST_BATCHES)
    classes = [str(name) for name in _unpickle(folder / META)[META_KEY]]
    mean, std = channel_stats(x_train)
    return ImageDataset(CIFAR10, x_train, y_train, x_test, y_test, classes, mean, std)


def _read(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        entry = _unpickle(folder / name)
        # Rows are 3,072 bytes: the red plane, then green, then blue, each 32x32 row-major.
        images.append(np.asarray(entry["data"], np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry["labels"], np.int64))
    return np.ascontiguousarray(np.concatenate(images).transpose(0, 2, 3, 1)), np.concatenate(labels)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            return pickle.load(file, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"cannot read the CIFAR-10 batch {path}: {error}") from None
