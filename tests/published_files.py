"""Files in the layout of the published converged CIFAR-10 ResNets, made here, and fixtures over
them (tests/test_published.py and tests/test_published_pages.py): no test needs the network."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.models import build_model
from explorer.models.published import CIFAR10_CLASSES, PUBLISHED, PublishedNet, cached_file


def published_bytes(model: torch.nn.Module, legacy: bool = True, drop: str | None = None) -> bytes:
    """``model``'s weights as akamaster's trainer saved them."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") or key == drop:
            continue
        name = "linear." + key[len("fc."):] if key.startswith("fc.") else key
        state["module." + name] = value.clone()
    buffer = io.BytesIO()
    torch.save({"best_prec1": 91.73, "state_dict": state}, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def named_file(folder: Path, depth: int, data: bytes) -> Path:
    """``resnet{D}-{first 8 hex digits of its sha256}.th`` in ``folder``, as published."""
    path = folder / f"resnet{depth}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub cache and a pretrained-runs folder of the test's own."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("RESNET_EXPLORER_PRETRAINED_RUNS", str(tmp_path / "pretrained-runs"))
    return tmp_path


def publish(monkeypatch, depth: int, data: bytes, folder: Path) -> PublishedNet:
    """Make ``data`` the published file of ``depth`` (its name carries its own hash)."""
    path = named_file(folder, depth, data)
    net = PublishedNet(depth, path.name, PUBLISHED[depth].published_error, PUBLISHED[depth].paper_error)
    monkeypatch.setitem(PUBLISHED, depth, net)
    return net


def in_cache(net: PublishedNet, data: bytes) -> Path:
    path = cached_file(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def cifar_folder(root: Path, per_class: int = 3, classes=CIFAR10_CLASSES) -> Path:
    """A tiny folder:DIR of CIFAR-10's classes: a few random 32x32 images in each."""
    generator = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for index in range(per_class):
                pixels = generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{index}.png")
    return root


@pytest.fixture
def published_pair(hub, monkeypatch):
    """ResNet-20 in the published layout, in the hub cache, and a folder of CIFAR-10-class images."""
    torch.manual_seed(1)
    model = build_model("cifar-resnet20").eval()
    data = published_bytes(model)
    in_cache(publish(monkeypatch, 20, data, hub), data)
    return model, cifar_folder(hub / "cifar")
