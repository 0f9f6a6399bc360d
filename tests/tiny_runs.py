"""A tiny trained plain/residual pair, shared by the lesion and landscape tests (trained once per session)."""

import json
import threading
import time

import pytest
import torch

from explorer.data import load_dataset
from explorer.models import build_model
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.store import Run
from explorer.train.trainer import train

TEST_IMAGES = 64


def answer_then_linger(seconds: float) -> dict:
    """A task target (tests/test_analysis_jobs.py) that answers at once and keeps its worker process
    alive ``seconds`` longer, as a worker does that is slow to exit: a thread the process waits for."""
    threading.Thread(target=time.sleep, args=(seconds,)).start()
    return {"answered": True}


def run_config(model: str) -> RunConfig:
    return RunConfig(model=ModelConfig(name=model),
                     data=DataConfig(dataset="shapes-easy", train_size=256, test_size=TEST_IMAGES, image_size=16),
                     optim=OptimConfig(steps=30, batch_size=32), probes=ProbeConfig(probe_every=0), device="cpu")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: the 2 cores are shared with other test runs, and OpenMP's spinning
    workers fight over them (a 30-step ResNet-8 run took 18 s with 2 threads under load, 2 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """ResNet-8 and plain-8, 30 steps on shapes-easy at 16 px; the tests only read them."""
    root = tmp_path_factory.mktemp("tiny-runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        made = {}
        for model in ("cifar-resnet8", "cifar-plain8"):
            config = run_config(model)
            result = train(config, Run.create(root / model, config.to_json()))
            assert result.state == "completed", result.message
            made[model] = root / model
        return made
    finally:
        torch.set_num_threads(before)


def rebuilt(run_dir, images: int = TEST_IMAGES):
    """The run's model, test images and labels, rebuilt here without the library's loader."""
    config = json.loads((run_dir / "config.json").read_text())
    info = json.loads((run_dir / "data.json").read_text())
    model = build_model(config["model"]["name"], num_classes=len(info["classes"]), input_size=info["image_size"])
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    data = config["data"]
    dataset = load_dataset(data["dataset"], seed=config["seed"], train_size=data["train_size"],
                           test_size=data["test_size"], image_size=data["image_size"])
    x = torch.as_tensor(dataset.x_test[:images]).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(info["mean"]).view(1, 3, 1, 1), torch.tensor(info["std"]).view(1, 3, 1, 1)
    return model.eval(), (x - mean) / std, torch.as_tensor(dataset.y_test[:images]).long()
