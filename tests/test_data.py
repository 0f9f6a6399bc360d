"""Data sets and the on-device loader: generated sets, CIFAR-10 from a local fake server, folders."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import ExifTags, Image, ImageFile

import explorer.data.cifar10 as cifar10
import explorer.data.shapes as shapes
from explorer.data import DATASET_NAMES, POINT_DATASETS, DeviceLoader, ImageDataset, PointDataset, load_dataset
from explorer.data.base import channel_stats, check_dataset_name, subsample
from explorer.data.cifar10 import ARCHIVE, FOLDER, load_cifar10
from explorer.data.folder import load_folder, load_npz_subset
from explorer.data.images import MAX_PIXELS, load_image
from explorer.data.loader import random_crop_flip
from explorer.data.toy2d import CLASS_NAMES, make_points, sample_points
from tests.conftest import ROOT, call_at_once

# --- shapes -------------------------------------------------------------------------------------


def test_shapes_same_seed_same_bytes_other_seed_differs():
    first, again, other = (shapes.generate_shapes(200, seed) for seed in (5, 5, 6))
    assert first.images.dtype == np.uint8 and first.images.shape == (200, 32, 32, 3)
    assert np.array_equal(first.images, again.images)
    assert np.array_equal(first.labels, again.labels) and np.array_equal(first.boxes, again.boxes)
    assert np.mean(first.images != other.images) > 0.5


def test_shapes_do_not_depend_on_thread_count(monkeypatch):
    monkeypatch.setattr(shapes, "CHUNK_PIXELS", 64 * 32 * 32)  # five chunks for 300 images
    threaded = shapes.generate_shapes(300, 1)
    monkeypatch.setattr(shapes, "MAX_THREADS", 1)
    assert np.array_equal(threaded.images, shapes.generate_shapes(300, 1).images)


def test_shapes_classes_are_balanced_and_shuffled():
    labels = shapes.generate_shapes(1003, 0).labels
    counts = np.bincount(labels, minlength=10)
    assert labels.dtype == np.int64 and len(counts) == len(shapes.SHAPE_CLASSES) == 10
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(labels, np.arange(1003) % 10)


def test_boxes_lie_in_the_image_and_hold_every_object_pixel_tightly():
    drawn = shapes.generate_shapes(300, 2, image_size=32, return_masks=True)
    boxes = drawn.boxes
    assert boxes.dtype == np.int32 and boxes.shape == (300, 4)
    row0, col0, row1, col1 = boxes.T
    assert (row0 >= 0).all() and (col0 >= 0).all() and (row1 <= 32).all() and (col1 <= 32).all()
    assert ((row1 - row0) >= 5).all() and ((col1 - col0) >= 5).all()  # objects are several pixels wide
    for mask, (r0, c0, r1, c1) in zip(drawn.masks, boxes):
        covered = mask > 0
        inside = np.zeros_like(covered)
        inside[r0:r1, c0:c1] = True
        assert not (covered & ~inside).any()
        # Tight: the box's first and last rows and columns each hold a covered pixel.
        assert covered[r0].any() and covered[r1 - 1].any() and covered[:, c0].any() and covered[:, c1 - 1].any()


def test_the_object_stands_out_from_its_surroundings():
    drawn = shapes.generate_shapes(200, 3, return_masks=True)
    images = drawn.images.astype(np.float64) / 255
    contrasts = []
    for image, mask in zip(images, drawn.masks):
        solid, ring = mask > 0.99, (mask == 0)
        contrasts.append(np.linalg.norm(image[solid].mean(0) - image[ring].mean(0)))
    # Stripes and checks show the background through their gaps, so some contrasts are low.
    assert np.median(contrasts) > 0.2


def test_colour_carries_no_label():
    """Only shape tells the classes apart: the mean colour of each class is the same."""
    drawn = shapes.generate_shapes(3000, 4)
    colour = drawn.images.reshape(len(drawn.images), -1, 3).mean(1) / 255  # (N, 3)
    per_class = np.stack([colour[drawn.labels == label].mean(0) for label in range(10)])
    assert np.abs(per_class - colour.mean(0)).max() < 0.03


def test_load_dataset_shapes():
    seen = []
    dataset = load_dataset("shapes", seed=11, train_size=300, test_size=100, progress=lambda done, total: seen.append(
        (done, total)))
    assert isinstance(dataset, ImageDataset) and dataset.name == "shapes"
    assert dataset.x_train.shape == (300, 32, 32, 3) and dataset.x_test.shape == (100, 32, 32, 3)
    assert dataset.y_train.dtype == np.int64 and dataset.image_size == 32 and dataset.num_classes == 10
    assert dataset.classes == list(shapes.SHAPE_CLASSES)
    assert dataset.boxes_train.shape == (300, 4) and dataset.boxes_test.shape == (100, 4)
    assert not np.array_equal(dataset.x_train[:100], dataset.x_test)  # independent streams
    pixels = dataset.x_train.reshape(-1, 3).astype(np.float64) / 255
    assert np.allclose(dataset.mean, pixels.mean(0), atol=1e-9) and np.allclose(dataset.std, pixels.std(0), atol=1e-9)
    assert seen and seen[-1] == (400, 400) and [done for done, _ in seen] == sorted(done for done, _ in seen)
    small = load_dataset("shapes", seed=11, train_size=30, test_size=10, image_size=20)
    assert small.x_train.shape == (30, 20, 20, 3)


def test_unknown_names_and_bad_sizes_fail_naming_the_valid_ones():
    with pytest.raises(ValueError, match="valid: shapes, shapes-easy .*cifar10, folder:PATH, spiral, circles, xor, gaussians"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="train_size"):
        load_dataset("shapes", train_size=0)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("shapes", image_size=4)
    with pytest.raises(ValueError, match="folder: needs a path"):
        load_dataset("folder:")
    assert set(POINT_DATASETS) < set(DATASET_NAMES)


def test_a_name_is_read_as_load_dataset_reads_it():
    assert check_dataset_name(" Shapes-Easy ") == "shapes-easy" and check_dataset_name("XOR") == "xor"
    assert check_dataset_name("Folder:/Data/Flowers") == "folder:/Data/Flowers"  # a path keeps its case
    with pytest.raises(ValueError, match="folder: needs a path"):
        check_dataset_name("folder: ")
    valid = r"valid: shapes, shapes-easy \(built in, offline\), cifar10, folder:PATH, spiral, circles, xor, gaussians$"
    with pytest.raises(ValueError, match=r"^unknown data set 'MNIST'; " + valid):
        check_dataset_name("MNIST")
    assert set(CLASS_NAMES) == set(POINT_DATASETS)


def test_importing_the_data_sets_does_not_import_torchvision():
    """It takes seconds; cifar10.py writes torchvision's constants out instead (checked below)."""
    check = "import sys, explorer.data; assert 'torchvision' not in sys.modules, 'torchvision was imported'"
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cifar10_constants_are_torchvisions():
    from torchvision.datasets import CIFAR10

    assert (cifar10.URL, cifar10.ARCHIVE, cifar10.ARCHIVE_MD5, cifar10.FOLDER) == (
        CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5, CIFAR10.base_folder)
    assert cifar10.TRAIN_BATCHES == tuple(name for name, _ in CIFAR10.train_list)
    assert cifar10.TEST_BATCHES == tuple(name for name, _ in CIFAR10.test_list)
    assert (cifar10.META, cifar10.META_KEY) == (CIFAR10.meta["filename"], CIFAR10.meta["key"])


def test_image_dataset_refuses_wrong_arrays():
    images, labels = np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", images.astype(np.float32), labels, images, labels, ["a"], (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="y_test"):
        ImageDataset("x", images, labels, images, labels[:3], ["a"], (0, 0, 0), (1, 1, 1))


def test_subsample_is_class_balanced_and_seeded():
    labels = np.repeat([0, 1, 2], [100, 50, 20])
    x = np.arange(len(labels))
    _, y, _ = subsample(x, labels, 30, seed=0)
    assert np.bincount(y).tolist() == [10, 10, 10]
    _, y, _ = subsample(x, labels, 90, seed=0)
    assert np.bincount(y).tolist() == [35, 35, 20]  # the small class gives all it has
    a, _, _ = subsample(x, labels, 30, seed=0)
    b, _, _ = subsample(x, labels, 30, seed=0)
    c, _, _ = subsample(x, labels, 30, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and (np.diff(a) > 0).all()
    assert subsample(x, labels, None, 0)[0] is x and subsample(x, labels, 1000, 0)[0] is x


def test_channel_stats_are_exact():
    images = np.random.default_rng(0).integers(0, 256, (50, 7, 5, 3), dtype=np.uint8)
    mean, std = channel_stats(images)
    reference = images.reshape(-1, 3) / 255
    assert np.allclose(mean, reference.mean(0), atol=1e-12) and np.allclose(std, reference.std(0), atol=1e-12)


# --- 2-D toy sets -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POINT_DATASETS)
def test_point_sets_are_balanced_seeded_float32(name):
    dataset = load_dataset(name, seed=3)
    assert isinstance(dataset, PointDataset) and dataset.num_classes == 2
    assert dataset.x_train.shape == (1000, 2) and dataset.x_test.shape == (1000, 2)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    assert np.bincount(dataset.y_train).tolist() == [500, 500]
    assert np.abs(dataset.x_train).max() < 1.6  # about [-1, 1]^2 plus noise 0.1
    again, other = load_dataset(name, seed=3), load_dataset(name, seed=4)
    assert np.array_equal(dataset.x_train, again.x_train) and not np.array_equal(dataset.x_train, other.x_train)
    assert not np.array_equal(dataset.x_train, dataset.x_test)
    assert load_dataset(name, train_size=10, test_size=7).x_test.shape == (7, 2)


def test_without_noise_the_classes_are_separated():
    x, y = sample_points("circles", 2000, noise=0.0, seed=0)
    radius = np.linalg.norm(x, axis=1)
    assert radius[y == 0].max() < 0.5 < 0.7 < radius[y == 1].min() and radius.max() <= 1.0 + 1e-6
    x, y = sample_points("xor", 2000, noise=0.0, seed=0)
    assert np.array_equal(x[:, 0] * x[:, 1] < 0, y == 1)
    x, y = sample_points("gaussians", 2000, noise=0.0, seed=0)
    assert np.mean((x.sum(1) > 0) == (y == 1)) > 0.99
    x, y = sample_points("spiral", 2000, noise=0.0, seed=0)
    assert np.linalg.norm(x, axis=1).max() <= 1.0 + 1e-6


def test_noise_is_the_standard_deviation_added():
    clean, _ = sample_points("spiral", 4000, noise=0.0, seed=9)
    noisy, _ = sample_points("spiral", 4000, noise=0.3, seed=9)
    assert abs((noisy - clean).std() - 0.3) < 0.02
    with pytest.raises(ValueError, match="valid: spiral, circles, xor, gaussians"):
        make_points("moons")


# --- image folders and the npz subset -----------------------------------------------------------


def _save(path: Path, colour, size=(40, 30), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)


def _make_folder(root: Path, test="test"):
    red, blue = (250, 10, 10), (10, 10, 250)
    _save(root / "train" / "cat" / "a.png", red)
    _save(root / "train" / "cat" / "b.png", red, size=(64, 64), mode="RGBA")
    _save(root / "train" / "cat" / "c.png", red, size=(17, 50), mode="P")
    _save(root / "train" / "dog" / "d.jpg", blue, size=(100, 80))
    _save(root / "train" / "dog" / "e.jpeg", blue, mode="L")
    _save(root / test / "cat" / "f.png", red)
    _save(root / test / "dog" / "g.jpg", blue)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_reads_any_size_and_mode(tmp_path):
    root = _make_folder(tmp_path)
    seen = []
    dataset = load_dataset(f"folder:{root}", image_size=16, progress=lambda done, total: seen.append((done, total)))
    assert dataset.classes == ["cat", "dog"] and dataset.image_size == 16
    assert dataset.x_train.shape == (5, 16, 16, 3) and dataset.x_test.shape == (2, 16, 16, 3)
    assert dataset.y_train.tolist() == [0, 0, 0, 1, 1] and dataset.y_test.tolist() == [0, 1]
    assert np.abs(dataset.x_train[0].astype(int) - (250, 10, 10)).max() <= 2  # still red after resizing
    assert np.abs(dataset.x_train[3].astype(int) - (10, 10, 250)).max() <= 6  # JPEG is lossy
    assert seen[-1] == (7, 7)
    grey = dataset.x_train[4]
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert load_dataset(f"folder:{root}", image_size=16, train_size=2).x_train.shape[0] == 2


def test_image_folder_takes_val_when_there_is_no_test(tmp_path):
    dataset = load_folder(_make_folder(tmp_path, test="val"), image_size=8)
    assert dataset.x_test.shape == (2, 8, 8, 3)


def test_image_folder_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no train/"):
        load_folder(tmp_path)
    _save(tmp_path / "train" / "cat" / "a.png", "red")
    with pytest.raises(ValueError, match="no test/ or val/"):
        load_folder(tmp_path)
    _save(tmp_path / "test" / "cow" / "a.png", "red")
    with pytest.raises(ValueError, match="classes that train/ lacks: cow"):
        load_folder(tmp_path)
    (tmp_path / "test" / "cow" / "a.png").rename(tmp_path / "test" / "cow.png")
    (tmp_path / "test" / "cow").rmdir()
    (tmp_path / "test" / "cat").mkdir()
    with pytest.raises(ValueError, match="no images .* for class\\(es\\) cat"):
        load_folder(tmp_path)


def test_unreadable_images_are_skipped_and_named_until_a_class_is_empty(tmp_path):
    root = _make_folder(tmp_path)
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image file.*broken.png"):
        dataset = load_folder(root, image_size=8)
    assert dataset.x_train.shape[0] == 5
    for path in (root / "test" / "dog").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable image for class 'dog'"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_folder(root, image_size=8)


RED, BLUE = (250, 10, 10), (10, 10, 250)


def _one_class_folder(root: Path) -> Path:
    """root/train/a/, empty for the test to fill, beside root/test/a/ with one plain image."""
    _save(root / "test" / "a" / "plain.png", (128, 128, 128))
    (root / "train" / "a").mkdir(parents=True)
    return root / "train" / "a"


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def test_image_folder_applies_exif_orientation_as_grad_cam_does(tmp_path):
    stored = np.zeros((24, 40, 3), np.uint8)  # landscape as stored: red left half, blue right half
    stored[:, :20], stored[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90 degrees clockwise, as a phone held upright
    path = _one_class_folder(tmp_path) / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = load_folder(tmp_path, image_size=16).x_train[0]
    decoded = load_image(path)
    assert decoded.shape == (40, 24, 3)
    np.testing.assert_array_equal(image, _resized(decoded, 16))
    # Turned clockwise, the left half is on top: red above blue, where unturned they sit side by side.
    assert np.abs(image[:6].astype(int) - RED).max() <= 12 and np.abs(image[-6:].astype(int) - BLUE).max() <= 12


def test_image_folder_composites_transparency_onto_white(tmp_path):
    pixels = np.zeros((20, 20, 4), np.uint8)  # the right half: transparent black
    pixels[:, :10] = (*RED, 255)
    pixels[:, 10:, 2] = 255
    pixels[:, 10:, 3] = 64  # the bottom half of that: blue, a quarter opaque
    pixels[:10, 10:, 3] = 0
    Image.fromarray(pixels, "RGBA").save(_one_class_folder(tmp_path) / "icon.png")
    image = load_folder(tmp_path, image_size=20).x_train[0].astype(int)
    assert (image[:, :10] == RED).all()
    assert (image[:10, 10:] == 255).all()  # white, not the black of the hidden colour
    blend = np.round(255 * (1 - 64 / 255) + np.array([0, 0, 255]) * 64 / 255)
    assert np.abs(image[10:, 10:] - blend).max() <= 1


def test_image_folder_skips_a_file_over_the_pixel_limit_without_decoding_it(tmp_path, monkeypatch):
    # 7000x7000 = 49 megapixels: over our limit, under Pillow's (89), so only our check refuses it.
    data = bytearray(_encoded(Image.new("RGB", (16, 16), RED), "JPEG"))
    frame = data.index(b"\xff\xc0")  # start of frame: length (2), precision (1), height (2), width (2)
    data[frame + 5 : frame + 9] = struct.pack(">HH", 7000, 7000)
    assert 7000 * 7000 > MAX_PIXELS and len(data) < 2000
    folder = _one_class_folder(tmp_path)
    (folder / "huge.jpg").write_bytes(bytes(data))
    _save(folder / "small.png", BLUE)
    decoded_sizes = []
    decode = ImageFile.ImageFile.load

    def recording_decode(image):
        decoded_sizes.append(image.size)
        return decode(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_decode)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) in .*huge\.jpg"):
        dataset = load_folder(tmp_path, image_size=8)
    assert dataset.x_train.shape == (1, 8, 8, 3) and (dataset.x_train[0] == BLUE).all()
    assert (40, 30) in decoded_sizes and (7000, 7000) not in decoded_sizes


def test_image_folder_reads_images_smaller_than_grad_cams_minimum(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(_one_class_folder(tmp_path) / "icon.png")
    np.testing.assert_array_equal(load_folder(tmp_path, image_size=8).x_train[0], pixels)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_npz_subset(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "subset.npz"
    np.savez(path, x_train=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), y_train=np.arange(40) % 10,
             x_test=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), y_test=np.arange(10, dtype=np.uint8),
             label_names=np.array([f"class{i}" for i in range(10)]))
    dataset = load_npz_subset(path)
    assert dataset.name == "cifar10-subset" and dataset.classes[3] == "class3"
    assert dataset.y_test.dtype == np.int64 and dataset.x_train.shape == (40, 32, 32, 3)
    assert np.bincount(load_npz_subset(path, train_size=20).y_train).tolist() == [2] * 10
    with pytest.raises(ValueError, match="no such .npz"):
        load_npz_subset(tmp_path / "missing.npz")


# --- CIFAR-10 from a local fake server ----------------------------------------------------------

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 4


def _batch(rng, count):
    return {"batch_label": b"fake", "labels": rng.integers(0, 10, count).tolist(),
            "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), "filenames": [b"x.png"] * count}


def _add(tar, name, entry):
    payload = pickle.dumps(entry, protocol=2)  # the original batches are Python 2 pickles
    info = tarfile.TarInfo(f"{FOLDER}/{name}")
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    """A small archive in the real layout: 5 train batches of 4 images, a test batch of 3."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _batch(rng, PER_BATCH) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, 3)
    folder = tmp_path_factory.mktemp("server")
    with tarfile.open(folder / ARCHIVE, "w:gz") as tar:
        for name, entry in batches.items():
            _add(tar, name, entry)
        _add(tar, "batches.meta", {"label_names": CLASSES, "num_cases_per_batch": PER_BATCH, "num_vis": 3072})
    md5 = hashlib.md5((folder / ARCHIVE).read_bytes()).hexdigest()
    return folder, md5, batches


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        if self.path.endswith("/truncated"):  # promises more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(fake_cifar):
    folder = fake_cifar[0]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{ARCHIVE}"  # nothing listens there any more


def _check_fake(dataset, batches):
    assert dataset.name == "cifar10" and dataset.classes == CLASSES
    assert dataset.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and dataset.x_test.shape == (3, 32, 32, 3)
    first = batches["data_batch_1"]
    # Rows hold the red, green and blue planes in turn; we hold HWC.
    assert np.array_equal(dataset.x_train[0], first["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert dataset.y_train[:PER_BATCH].tolist() == first["labels"] and dataset.y_train.dtype == np.int64
    assert dataset.y_test.tolist() == batches["test_batch"]["labels"]


def test_cifar10_downloads_with_progress_and_caches(tmp_path, fake_cifar, server, closed_port_url):
    folder, md5, batches = fake_cifar
    seen = []
    dataset = load_cifar10(tmp_path, url=f"{server}/{ARCHIVE}", md5=md5, progress=lambda *p: seen.append(p))
    _check_fake(dataset, batches)
    size = (folder / ARCHIVE).stat().st_size
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert (tmp_path / ARCHIVE).read_bytes() == (folder / ARCHIVE).read_bytes()
    assert not list(tmp_path.glob("*.part")) and (tmp_path / FOLDER / "data_batch_5").is_file()
    # A second load reads the cache: it works with the network gone.
    _check_fake(load_cifar10(tmp_path, url=closed_port_url, md5=md5), batches)


def test_cifar10_through_load_dataset_and_environment(tmp_path, fake_cifar, server, monkeypatch):
    folder, md5, _ = fake_cifar
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("RESNET_EXPLORER_CIFAR10_URL", f"{server}/{ARCHIVE}")
    monkeypatch.setenv("RESNET_EXPLORER_CIFAR10_MD5", md5)
    dataset = load_dataset("cifar10", train_size=10, test_size=2, image_size=16)
    assert dataset.x_train.shape == (10, 16, 16, 3) and dataset.x_test.shape == (2, 16, 16, 3)
    assert (tmp_path / "cache" / ARCHIVE).is_file()


def test_cifar10_wrong_md5_removes_the_file(tmp_path, server):
    with pytest.raises(ValueError, match="md5 .* expected 0{32}.*removed"):
        load_cifar10(tmp_path, url=f"{server}/{ARCHIVE}", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_cifar10_offline_names_the_alternatives(tmp_path, closed_port_url):
    with pytest.raises(ValueError, match="could not download CIFAR-10") as error:
        load_cifar10(tmp_path, url=closed_port_url, timeout=5)
    message = str(error.value)
    assert "\n" not in message and "'shapes'" in message and "folder:PATH" in message and "data_dir" in message
    assert list(tmp_path.iterdir()) == []


def test_cifar10_interrupted_download_leaves_nothing(tmp_path, server):
    with pytest.raises(ValueError, match="stopped after 1,000 of 100,000 bytes"):
        load_cifar10(tmp_path, url=f"{server}/truncated", md5="0" * 32, timeout=5)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="HTTP 404 .*instead use the built-in"):
        load_cifar10(tmp_path, url=f"{server}/no-such-file", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_cifar10_from_a_user_folder(tmp_path, fake_cifar, closed_port_url):
    folder, md5, batches = fake_cifar
    with tarfile.open(folder / ARCHIVE) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    # The folder that holds cifar-10-batches-py/, or that folder itself; no network needed.
    _check_fake(load_cifar10(tmp_path / "unpacked", url=closed_port_url), batches)
    _check_fake(load_cifar10(tmp_path / "unpacked" / FOLDER, url=closed_port_url), batches)
    # A folder with only the archive: checked, then unpacked beside it.
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / ARCHIVE).write_bytes((folder / ARCHIVE).read_bytes())
    _check_fake(load_cifar10(tmp_path / "archive", url=closed_port_url, md5=md5), batches)
    with pytest.raises(ValueError, match="is not a folder"):
        load_cifar10(tmp_path / "nowhere")


# --- DeviceLoader -------------------------------------------------------------------------------


def _images(count=20, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_random_crop_flip_matches_a_per_image_reference():
    images = torch.from_numpy(_images(64)).permute(0, 3, 1, 2).contiguous()
    generator = torch.Generator().manual_seed(0)
    offsets = torch.randint(0, 9, (64, 2), generator=generator)
    offsets[:4] = torch.tensor([[0, 0], [8, 8], [0, 8], [8, 0]])  # the extreme corners
    flips = torch.rand(64, generator=generator) < 0.5
    out = random_crop_flip(images, offsets, flips)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for image, (row, col), flip, got in zip(images, offsets.tolist(), flips, out):
        expected = F.pad(image, (4, 4, 4, 4))[:, row:row + 8, col:col + 8]
        if flip:
            expected = expected.flip(-1)
        assert torch.equal(got, expected)


def test_batches_have_the_right_shape_dtype_and_normalisation():
    images, mean, std = _images(20), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = DeviceLoader(images, np.arange(20), batch_size=8, mean=mean, std=std, shuffle=False)
    assert len(loader) == 3 and len(DeviceLoader(images, np.arange(20), 8, drop_last=True)) == 2
    batches = list(loader)
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x, y = batches[0]
    assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    reference = (images[:8].transpose(0, 3, 1, 2) / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert np.allclose(x.numpy(), reference, atol=1e-5)
    probe, labels = loader.batch(torch.tensor([5, 2]))
    assert torch.equal(labels, torch.tensor([5, 2])) and torch.allclose(probe, torch.cat([batches[0][0][5:6],
                                                                                          batches[0][0][2:3]]))
    assert DeviceLoader(images, np.arange(20), 4, channels_last=True).batch(torch.arange(4))[0].is_contiguous(
        memory_format=torch.channels_last)


def test_an_epoch_covers_every_index_once():
    loader = DeviceLoader(_images(103), np.arange(103), batch_size=10, seed=1)
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == list(range(103)) and seen.tolist() != list(range(103))
    dropped = torch.cat([y for _, y in DeviceLoader(_images(103), np.arange(103), 10, drop_last=True)])
    assert len(dropped) == 100 and len(set(dropped.tolist())) == 100
    tiny = list(DeviceLoader(_images(3), np.arange(3), 10, drop_last=True))  # smaller than a batch: one batch
    assert len(tiny) == 1 and len(tiny[0][1]) == 3


def test_epochs_are_reproducible_by_seed():
    def epochs(seed):
        loader = DeviceLoader(_images(50), np.arange(50), 16, augment=True, seed=seed)
        return [torch.cat([x for x, _ in loader]) for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[0], first[1])


def test_augmentation_shifts_and_flips_about_half_the_images():
    # Bright left half, dark right half: a flip puts the bright half on the right.
    images = np.zeros((2000, 32, 32, 3), np.uint8)
    images[:, :, :16] = 255
    loader = DeviceLoader(images, np.arange(2000), 500, mean=(0, 0, 0), std=(1, 1, 1), augment=True, seed=0)
    x = torch.cat([x for x, _ in loader])[:, 0, 12:20]  # central rows: never vertical padding
    flipped = x[:, :, :8].mean((1, 2)) < x[:, :, -8:].mean((1, 2))
    assert 0.45 < flipped.float().mean() < 0.55
    # The bright/dark edge moves with the crop: column offset c puts the last bright column at 19 - c.
    bright = x[~flipped][:, 0] > 0.5
    last_bright = (bright * torch.arange(32)).amax(1)
    assert set(last_bright.tolist()) == set(range(11, 20))
    plain = DeviceLoader(images, np.arange(2000), 500, mean=(0, 0, 0), std=(1, 1, 1))
    assert all(torch.equal(x, plain.batch(y)[0]) for x, y in plain)


def test_points_pass_through_unchanged():
    points = np.random.default_rng(0).standard_normal((30, 2)).astype(np.float32)
    loader = DeviceLoader(points, np.arange(30) % 2, 7, shuffle=False, mean=(9, 9), std=(9, 9))
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape == (7, 2) and torch.equal(x, torch.from_numpy(points[:7]))
    assert len(loader) == 5


def test_loader_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="as many labels"):
        DeviceLoader(_images(5), np.arange(4), 2)
    with pytest.raises(ValueError, match="batch size"):
        DeviceLoader(_images(5), np.arange(5), 0)
    with pytest.raises(ValueError, match="uint8 \\(N, H, W, C\\)"):
        DeviceLoader(np.zeros((5, 3, 8, 8), np.uint8), np.arange(5), 2)


def test_cifar10_that_cannot_be_had_is_refused_before_any_run_exists(tmp_path, fake_cifar, server, closed_port_url,
                                                                     monkeypatch):
    from explorer.data.cifar10 import check_obtainable
    from explorer.train.config import DataConfig, ModelConfig, OptimConfig, RunConfig
    from explorer.train.jobs import JobManager

    # Offline: one sentence with the alternatives, no errno text, nothing written.
    with pytest.raises(ValueError) as error:
        check_obtainable(tmp_path, url=closed_port_url)
    message = str(error.value)
    assert message.startswith("CIFAR-10 is not on this machine, and it cannot be downloaded: 127.0.0.1:")
    assert "'shapes-easy'" in message and "folder:PATH" in message and "Errno" not in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="answered HTTP 404"):
        check_obtainable(tmp_path, url=f"{server}/no-such-file")
    check_obtainable(tmp_path, url=f"{server}/{ARCHIVE}")  # reachable: the worker will download it
    assert list(tmp_path.iterdir()) == []  # asking downloaded nothing
    (tmp_path / ARCHIVE).write_bytes((fake_cifar[0] / ARCHIVE).read_bytes())
    check_obtainable(tmp_path, url=closed_port_url)  # here already: the network is not asked

    # Through the job queue, as the Train page and the CLI submit: no run folder is created.
    monkeypatch.setenv("RESNET_EXPLORER_CIFAR10_URL", closed_port_url)
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(tmp_path / "empty-cache"))
    runs = tmp_path / "runs"
    manager = JobManager(runs, backend="thread")
    config = RunConfig(model=ModelConfig(name="cifar-resnet20"), data=DataConfig(dataset="cifar10"),
                       optim=OptimConfig(steps=10))
    with pytest.raises(ValueError, match="cannot be downloaded"):
        manager.submit_group([config, config], group="offline")
    assert not runs.exists() or not any(runs.iterdir())


class _CountedDecodes:
    """Stands in for folder.py's per-file decoder and counts the files it decodes (from any thread)."""

    def __init__(self, monkeypatch):
        from explorer.data import folder as folder_module

        self.calls, self._lock, self._decode = 0, threading.Lock(), folder_module._read_image
        monkeypatch.setattr(folder_module, "_read_image", self)

    def __call__(self, path, size):
        with self._lock:
            self.calls += 1
        return self._decode(path, size)


@pytest.fixture
def own_data_cache(tmp_path, monkeypatch):
    cache = tmp_path / "data-cache"
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(cache))
    return cache


def test_a_folder_is_decoded_once_and_read_from_the_cache_after(tmp_path, monkeypatch, own_data_cache):
    root = _make_folder(tmp_path / "images")
    decodes = _CountedDecodes(monkeypatch)
    first = load_folder(root, image_size=16)
    assert decodes.calls == 7
    seen = []
    again = load_folder(root, image_size=16, progress=lambda done, total: seen.append((done, total)))
    assert decodes.calls == 7 and seen == [(7, 7)]  # nothing decoded; the progress bar still ends full
    for name in ("x_train", "y_train", "x_test", "y_test", "classes", "mean", "std"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    assert len(list((own_data_cache / "decoded-folders").glob("*.npz"))) == 1
    load_folder(root, image_size=8)  # another size: its own entry
    assert decodes.calls == 14
    load_folder(root, image_size=16, use_cache=False)
    assert decodes.calls == 21


def test_a_changed_added_or_removed_file_decodes_the_folder_again(tmp_path, monkeypatch, own_data_cache):
    root = _make_folder(tmp_path / "images")
    decodes = _CountedDecodes(monkeypatch)
    load_folder(root, image_size=8)
    _save(root / "train" / "dog" / "new.png", (10, 10, 250))
    assert load_folder(root, image_size=8).x_train.shape[0] == 6 and decodes.calls == 7 + 8
    _save(root / "train" / "cat" / "a.png", (10, 250, 10), size=(40, 30))  # replaced: green now
    assert np.abs(load_folder(root, image_size=8).x_train[0].astype(int) - (10, 250, 10)).max() <= 2
    (root / "train" / "dog" / "new.png").unlink()
    assert load_folder(root, image_size=8).x_train.shape[0] == 5 and decodes.calls == 7 + 8 + 8 + 7


def test_skipped_files_are_still_named_when_the_folder_comes_from_the_cache(tmp_path, own_data_cache):
    root = _make_folder(tmp_path / "images")
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    for _ in range(2):
        with pytest.warns(UserWarning, match="skipped 1 unreadable image file.*broken.png"):
            assert load_folder(root, image_size=8).x_train.shape[0] == 5


def test_a_damaged_cache_entry_is_decoded_again_and_replaced(tmp_path, monkeypatch, own_data_cache):
    root = _make_folder(tmp_path / "images")
    first = load_folder(root, image_size=8)
    (entry,) = (own_data_cache / "decoded-folders").glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # cut short, as by a full disk or a killed writer
    decodes = _CountedDecodes(monkeypatch)
    np.testing.assert_array_equal(load_folder(root, image_size=8).x_train, first.x_train)
    assert decodes.calls == 7
    np.testing.assert_array_equal(load_folder(root, image_size=8).x_train, first.x_train)
    assert decodes.calls == 7


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder would have to go under this file")
    monkeypatch.setenv("RESNET_EXPLORER_DATA", str(blocker / "cache"))
    root = _make_folder(tmp_path / "images")
    assert load_folder(root, image_size=8).x_train.shape == (5, 8, 8, 3)
    assert not (blocker.parent / "cache").exists()


def test_a_full_disk_while_the_cache_is_written_leaves_no_partial_file(tmp_path, monkeypatch, own_data_cache):
    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    root = _make_folder(tmp_path / "images")
    assert load_folder(root, image_size=8).x_train.shape == (5, 8, 8, 3)
    assert [path.name for path in (own_data_cache / "decoded-folders").iterdir() if path.suffix == ".npz"] == []


def test_runs_that_load_a_folder_at_once_decode_it_once(tmp_path, monkeypatch, own_data_cache):
    root = _make_folder(tmp_path / "images")
    decodes = _CountedDecodes(monkeypatch)
    shapes_seen, errors = call_at_once(lambda: load_folder(root, image_size=8).x_train.shape)
    assert errors == [] and shapes_seen == [(5, 8, 8, 3)] * 4
    assert decodes.calls == 7


def test_only_the_most_recently_read_folders_are_kept(tmp_path, own_data_cache):
    from explorer.data import folder as folder_module

    root = _make_folder(tmp_path / "images")
    for order, size in enumerate(range(8, 8 + folder_module.CACHE_KEPT + 2)):
        load_folder(root, image_size=size)
        # Written within the same clock tick, entries could tie on their time: give each its own second.
        (entry,) = (own_data_cache / "decoded-folders").glob(f"*-{size}px.npz")
        os.utime(entry, (1_700_000_000 + order, 1_700_000_000 + order))  # before now
    kept = sorted((own_data_cache / "decoded-folders").glob("*.npz"))
    assert len(kept) == folder_module.CACHE_KEPT
    assert not any(path.name.endswith(("-8px.npz", "-9px.npz")) for path in kept)
