"""``pretrained:cifar-resnet{D}``: the published converged CIFAR-10 ResNets as run folders.

Everything that studies a run (Grad-CAM, layer responses, the lesion study, the loss landscape,
``evaluate``) reads a run folder: config.json (the model, the test set), data.json (classes, image
size, the normalisation) and model.pt. So a published net becomes one, made once in a cache
folder: its weights strictly mapped onto ``cifar-resnet{D}``, data.json with ImageNet's mean and
std (what those nets were trained with), its status ``completed`` and shared (no owner). The
analyses then need nothing of their own for it, and cache their results beside it as for any run.

Its test images are CIFAR-10's (downloaded on first use) or a folder of them (``folder:DIR`` with
train/ and test/ of the ten CIFAR-10 class subfolders); one run folder per test set.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from explorer.data.base import CIFAR10, FOLDER_PREFIX, check_dataset_name
from explorer.download import Progress
from explorer.models.published import (
    CIFAR10_CLASSES,
    MEAN,
    PRETRAINED_PREFIX,
    SOURCE,
    STD,
    cached_file,
    is_pretrained_spec,
    load_published,
    published_net,
)
from explorer.train.config import DataConfig, ModelConfig, RunConfig
from explorer.train.store import Run

RUNS_ENV = "RESNET_EXPLORER_PRETRAINED_RUNS"
DEFAULT_RUNS = Path("~/.cache/resnet-explorer/pretrained-runs")

__all__ = ["PRETRAINED_PREFIX", "available_here", "check_available", "check_test_set_available", "check_weights_available",
           "is_pretrained_spec", "pretrained_run", "resolve_run_dir"]


def runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV) or DEFAULT_RUNS).expanduser()


def _test_set(dataset: str | None) -> str:
    dataset = (dataset or CIFAR10).strip()
    check_dataset_name(dataset)
    if dataset != CIFAR10 and not dataset.startswith(FOLDER_PREFIX):
        raise ValueError(f"the published nets were trained on CIFAR-10: give --dataset {CIFAR10} or "
                         f"{FOLDER_PREFIX}DIR (a folder of CIFAR-10 images, train/ and test/ with its ten classes), "
                         f"not {dataset!r}")
    if dataset.startswith(FOLDER_PREFIX):  # one folder, however it is spelt
        dataset = FOLDER_PREFIX + str(Path(dataset[len(FOLDER_PREFIX):].strip()).expanduser().resolve())
    return dataset


def folder_for(spec: str, dataset: str | None = None) -> Path:
    """The run folder of ``spec`` on that test set (made or not)."""
    net, dataset = published_net(spec), _test_set(dataset)
    suffix = "" if dataset == CIFAR10 else "-" + hashlib.sha256(dataset.encode()).hexdigest()[:8]
    return runs_root() / f"published-{net.model_name}{suffix}"


def pretrained_run(spec: str, dataset: str | None = None, data_dir: str | None = None,
                   progress: Progress | None = None) -> Path:
    """The run folder of the published ``spec`` evaluated on ``dataset`` (CIFAR-10 by default),
    made first if it is not there: the weights are downloaded (or taken from the torch hub cache),
    checked against the hash in their name and loaded strictly."""
    net, test_set = published_net(spec), _test_set(dataset)
    folder = folder_for(spec, test_set)
    run = Run(folder)
    if (folder / "model.pt").exists() and run.config().get("data", {}).get("data_dir") == data_dir:
        return folder
    model = load_published(spec, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    config = RunConfig(model=ModelConfig(name=net.model_name),
                       data=DataConfig(dataset=test_set, image_size=32, augment=False, data_dir=data_dir)).to_json()
    config["published"] = {"source": SOURCE, "file": net.file_name, "published_error": net.published_error,
                           "paper_error": net.paper_error}
    # model.pt last, through a temporary name: a folder with model.pt is whole (two sessions that make
    # it at once write the same bytes).
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    run.save_data_info({"classes": list(CIFAR10_CLASSES), "image_size": 32, "mean": list(MEAN), "std": list(STD)})
    run.set_status("completed", f"published weights, trained to convergence ({SOURCE})", owner=None,
                   total_steps=None, step=None)
    temporary = folder / f"model.pt.tmp{os.getpid()}"
    torch.save(model.state_dict(), temporary)
    os.replace(temporary, folder / "model.pt")
    return folder


def check_weights_available(spec: str) -> None:
    """Refuse at once, in one line, a published net whose weights are neither here nor downloadable."""
    from explorer.models.published import check_obtainable

    net = published_net(spec)
    made = runs_root().glob(f"published-{net.model_name}*")  # on any test set: the same weights
    if not cached_file(net).exists() and not any(folder.joinpath("model.pt").exists() for folder in made):
        check_obtainable(net)


def check_test_set_available(dataset: str | None = None, data_dir: str | None = None) -> None:
    """Refuse at once, in one line, test images that are neither here nor downloadable."""
    from explorer.data.cifar10 import check_obtainable

    test_set = _test_set(dataset)
    if test_set == CIFAR10:
        check_obtainable(data_dir, timeout=3.0)
    elif not Path(test_set[len(FOLDER_PREFIX):]).is_dir():
        raise ValueError(f"image folder {test_set[len(FOLDER_PREFIX):]!r} does not exist or is not a folder")


def available_here(spec: str, dataset: str | None = None, data_dir: str | None = None) -> bool:
    """Whether the weights and the test images are on this machine already (asks no network)."""
    from explorer.data.cifar10 import ARCHIVE, default_data_dir, find_batches

    try:
        net, test_set = published_net(spec), _test_set(dataset)
    except ValueError:
        return False
    made = (folder_for(spec, test_set) / "model.pt").exists()
    if not made and not cached_file(net).exists():
        return False
    if test_set == CIFAR10:
        root = Path(data_dir).expanduser() if data_dir else default_data_dir()
        return find_batches(root) is not None or (root / ARCHIVE).exists()
    return Path(test_set[len(FOLDER_PREFIX):]).is_dir()


def check_available(spec: str, dataset: str | None = None, data_dir: str | None = None) -> None:
    """Both: before a page starts work on a published net that could only fail."""
    check_weights_available(spec)
    check_test_set_available(dataset, data_dir)


def resolve_run_dir(text: str, dataset: str | None = None, data_dir: str | None = None,
                    progress: Progress | None = None) -> str:
    """A run folder as given, or ``pretrained:cifar-resnet{D}`` made into one (on ``dataset``)."""
    if is_pretrained_spec(text):
        return str(pretrained_run(text, dataset, data_dir=data_dir, progress=progress))
    if dataset is not None:
        raise ValueError(f"--dataset is for pretrained:... nets; {text} is a run folder, evaluated on its own test set")
    return text
