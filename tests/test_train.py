"""The trainer, the run store, background jobs and the train/runs CLI, on tiny configurations."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.data import load_dataset
from explorer.data.loader import DeviceLoader
from explorer.fields import specs, to_text
from explorer.models import build_model
from explorer.models.cost import ModelTooLarge
from explorer.train import trainer as trainer_module
from explorer.train.config import (
    SECTIONS,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ProbeConfig,
    RunConfig,
    add_config_flags,
    build_parser_flags,
    config_from_args,
)
from explorer.train.jobs import JobManager
from explorer.train.probes import measure_responses
from explorer.train.store import Run, list_runs, mark_interrupted, pid_alive, read_jsonl
from explorer.train.trainer import lr_at, train
from tests.conftest import ROOT

TINY_DATA = DataConfig(dataset="shapes", train_size=256, test_size=96)


def tiny(steps=12, model="cifar-resnet8", **optim) -> RunConfig:
    return RunConfig(
        model=ModelConfig(name=model), data=TINY_DATA,
        optim=OptimConfig(steps=steps, batch_size=32, **optim),
        probes=ProbeConfig(probe_every=4, probe_batch=16, log_every=4, eval_every=8, checkpoint_every=4),
        device="cpu",
    )


def test_lr_schedule_is_the_papers():
    optim = OptimConfig(steps=100, warmup_steps=10)
    assert [lr_at(s, 100, optim) for s in (0, 9, 10, 49, 50, 74, 75, 99)] == \
        pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_a_tiny_run_writes_every_record(tmp_path):
    run = Run.create(tmp_path / "run", tiny().to_json())
    result = train(tiny(), run)
    assert result.state == "completed", result.message
    metrics = run.metrics()
    assert not metrics.problems
    train_records = [m for m in metrics.records if m["split"] == "train"]
    test_records = [m for m in metrics.records if m["split"] == "test"]
    assert [m["step"] for m in train_records] == [4, 8, 12] and [m["step"] for m in test_records] == [8, 12]
    for record in metrics.records:
        assert {"step", "epoch", "split", "loss", "error", "lr", "time"} <= set(record)
        assert 0 <= record["error"] <= 1 and record["loss"] > 0
    probes = run.probes().records
    # Every 4 steps before the update, and once more for the weights the run saved (step 12).
    assert [p["step"] for p in probes if p["kind"] == "grad_norm"] == [0, 4, 8, 12]
    responses = [p for p in probes if p["kind"] == "response_std"]
    assert len(responses) == 4 and len(responses[0]["layers"]) == 7
    grads = next(p for p in probes if p["kind"] == "grad_norm")
    assert {b["name"] for b in grads["blocks"]} == {"layer1.0", "layer2.0", "layer3.0"}
    assert all(b["total"] > 0 and b["shortcut"] > 0 for b in grads["blocks"])
    status = run.status()
    assert status["state"] == "completed" and status["step"] == 12 and status["images_per_sec"] > 0
    model = build_model("cifar-resnet8")
    model.load_state_dict(torch.load(run.path / "model.pt", weights_only=True))
    assert result.test_error == test_records[-1]["error"]
    # The last response record describes the saved weights: measured again on them, the same.
    data = load_dataset("shapes", seed=0, train_size=256, test_size=96)
    test_loader = DeviceLoader(data.x_test, data.y_test, 96, device=torch.device("cpu"), mean=data.mean,
                               std=data.std, augment=False, shuffle=False)
    probe_images, _ = test_loader.batch(torch.arange(16))  # the trainer's held-out batch
    again = {layer["name"]: layer["std"] for layer in measure_responses(model, probe_images)}
    assert responses[-1]["step"] == 12
    assert {layer["name"]: layer["std"] for layer in responses[-1]["layers"]} == pytest.approx(again, rel=1e-4)


def test_image_size_draws_smaller_shapes_and_records_it(tmp_path):
    config = dataclasses.replace(tiny(steps=4), data=dataclasses.replace(TINY_DATA, image_size=16))
    run = Run.create(tmp_path / "run", config.to_json())
    assert train(config, run).state == "completed"
    assert run.data_info()["image_size"] == 16 and len(run.data_info()["classes"]) == 10
    model = build_model("cifar-resnet8", input_size=16)
    model.load_state_dict(torch.load(run.path / "model.pt", weights_only=True))


def _colour_dataset(count=512):
    """Four classes told apart by the image's colour alone: any working trainer learns it at once."""
    from explorer.data import ImageDataset

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(count) % 4
    palette = torch.tensor([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]], dtype=torch.uint8)
    noise = torch.randint(0, 40, (count, 32, 32, 3), generator=generator, dtype=torch.uint8)
    images = (palette[labels][:, None, None, :] // 2 + noise).numpy()
    split = count * 3 // 4
    return ImageDataset("colours", images[:split], labels[:split].numpy(), images[split:], labels[split:].numpy(),
                        ["red", "green", "blue", "yellow"], (0.4, 0.4, 0.4), (0.2, 0.2, 0.2))


def test_training_learns(tmp_path):
    config = dataclasses.replace(tiny(steps=40), probes=ProbeConfig(probe_every=0, log_every=10, eval_every=40))
    result = train(config, Run.create(tmp_path / "run", config.to_json()), dataset=_colour_dataset())
    assert result.state == "completed"
    assert result.test_error <= 0.02 and result.train_error <= 0.1  # chance: 0.75


class _NaNAfter(nn.Module):
    """Wraps a model so that its training-mode output becomes NaN from the n-th training call."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.calls += 1
            if self.calls > self.n:
                return out * float("nan")
        return out


def test_nan_loss_marks_the_run_diverged_with_the_step(tmp_path, monkeypatch):
    real = trainer_module.build_model
    monkeypatch.setattr(trainer_module, "build_model", lambda *a, **k: _NaNAfter(real(*a, **k), 6))
    run = Run.create(tmp_path / "run", tiny().to_json())
    result = train(tiny(), run)
    assert result.state == "diverged"
    assert "at step 6" in result.message and run.status()["state"] == "diverged"


def test_out_of_memory_fails_the_run_and_not_the_others(tmp_path, monkeypatch):
    real = trainer_module.build_model

    def build(name, **options):
        model = real(name, **options)
        if name == "cifar-plain8":
            def explode(*args):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            model.forward = explode
        return model

    monkeypatch.setattr(trainer_module, "build_model", build)
    manager = JobManager(tmp_path, max_concurrent=2, backend="thread")  # the patch lives in this process
    failing = manager.submit(tiny(model="cifar-plain8"))
    healthy = manager.submit(tiny(model="cifar-resnet8"))
    assert manager.wait(failing.run_dir, 120).state == "failed"
    assert "out of device memory" in failing.run.status()["message"]
    assert manager.wait(healthy.run_dir, 120).state == "completed"


def test_a_model_that_cannot_fit_is_refused_before_anything_exists(tmp_path):
    manager = JobManager(tmp_path)
    config = dataclasses.replace(tiny(model="resnet152"), optim=OptimConfig(steps=1, batch_size=65_536))
    with pytest.raises(ModelTooLarge, match="needs about"):
        manager.submit(config)
    assert list_runs(tmp_path) == []


def test_queue_pause_stop_and_resume(tmp_path):
    manager = JobManager(tmp_path, max_concurrent=1)
    first = manager.submit(tiny(steps=400))
    second = manager.submit(tiny(steps=8))
    assert manager.queue_position(second.run_dir) == 1
    assert second.run.status()["state"] == "queued"
    _wait_for(lambda: first.run.status().get("step", 0) >= 4)
    manager.pause(first.run_dir)
    _wait_for(lambda: first.run.status()["state"] == "paused")
    paused_at = first.run.status()["step"]
    time.sleep(0.5)
    assert first.run.status()["step"] == paused_at
    manager.resume(first.run_dir)
    _wait_for(lambda: first.run.status()["state"] == "running")
    assert manager.stop(first.run_dir) == "stopping"
    assert manager.wait(first.run_dir, 60).state == "stopped"
    assert "already ended" in manager.stop(first.run_dir)
    assert manager.wait(second.run_dir, 120).state == "completed"

    resumed = manager.resume(first.run_dir)
    assert manager.wait(resumed.run_dir, 300).state == "completed"
    steps = [m["step"] for m in first.run.metrics().records if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 400


def _wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_store_skips_and_reports_bad_lines(tmp_path):
    run = Run.create(tmp_path / "run", tiny().to_json())
    run.append_metric({"step": 1, "split": "train", "error": 0.5})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write("{not json\n")
        handle.write('{"step": 3, "split": "train", "error": 0.4}\n')
        handle.write('{"step": 4, "spl')
    records = run.metrics()
    assert [r["step"] for r in records.records] == [1, 3]
    assert records.problems == ["metrics.jsonl line 2: corrupt (skipped)", "metrics.jsonl line 4: half-written (skipped)"]
    assert read_jsonl(tmp_path / "missing.jsonl").records == []


def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(tmp_path):
    run = Run.create(tmp_path / "run", tiny().to_json())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.set_status("running", "step 4", step=4)
    status = json.loads((run.path / "status.json").read_text())
    status["pid"] = dead.pid
    (run.path / "status.json").write_text(json.dumps(status))
    assert [r.id for r in mark_interrupted(tmp_path)] == ["run"]
    assert run.status()["state"] == "interrupted"


def test_every_config_field_has_a_cli_flag():
    flags = build_parser_flags()
    for section in (ModelConfig, DataConfig, OptimConfig, ProbeConfig):
        for item in dataclasses.fields(section):
            assert "--" + (item.metadata.get("flag") or item.name).replace("_", "-") in flags
    assert {"--model", "--dataset", "--steps", "--epochs", "--batch-size", "--lr", "--device", "--probe-every",
            "--seed"} <= flags


# Every field set away from its default, so the round trip cannot pass by falling back to one.
EVERY_FIELD_CHANGED = RunConfig(
    model=ModelConfig(name="cifar-plain56", shortcut="B"),
    data=DataConfig(dataset="folder:/data/Flowers", train_size=100, test_size=50, image_size=16, augment=False,
                    data_dir="/data/cifar"),
    optim=OptimConfig(steps=7, epochs=None, batch_size=32, lr=0.05, momentum=0.5, weight_decay=0.0,
                      lr_milestones=(0.3, 0.9), lr_decay=0.5, warmup_steps=3, warmup_lr=0.002),
    probes=ProbeConfig(probe_every=0, probe_batch=8, log_every=2, eval_every=4, checkpoint_every=6),
    seed=5, device="cpu",
)


def _flag_values(config: RunConfig) -> list[str]:
    argv = []
    for section in (*[getattr(config, name) for name in SECTIONS], config):
        for spec in specs(type(section)).values():
            value = getattr(section, spec.name)
            if value is None:
                continue
            if spec.kind is bool:
                argv.append(spec.flag if value else spec.flag.replace("--", "--no-", 1))
            else:
                argv += [spec.flag, to_text(value)]
    return argv


def test_every_train_flag_parses_and_round_trips():
    import argparse

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    for config in (RunConfig(), EVERY_FIELD_CHANGED):
        assert config_from_args(parser.parse_args(_flag_values(config))) == config
    assert all(getattr(RunConfig(), name) != getattr(EVERY_FIELD_CHANGED, name) for name in SECTIONS)
    # Case-insensitive choices come back as declared; a folder path keeps its case.
    parsed = config_from_args(parser.parse_args(["--shortcut", "c", "--device", "CPU", "--dataset", "folder:/A/b"]))
    assert (parsed.model.shortcut, parsed.device, parsed.data.dataset) == ("C", "cpu", "folder:/A/b")


@pytest.mark.parametrize("flag,text", [
    ("--lr-milestones", "0.5,1.5"), ("--lr-milestones", "half"), ("--lr", "0"), ("--lr", "nan"),
    ("--momentum", "1"), ("--batch-size", "65537"), ("--steps", "2.5"), ("--image-size", "4"),
    ("--shortcut", "D"), ("--device", "gpu"), ("--probe-every", "-1"), ("--log-every", "0"), ("--seed", "-3"),
])
def test_a_bad_flag_value_is_refused_in_one_line_naming_the_flag(tmp_path, capsys, flag, text):
    code = main(["train", "--steps", "2", "--out", str(tmp_path / "r"), flag, text])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {flag} must be"), err
    assert not (tmp_path / "r").exists()


def test_cli_train_json_and_runs_listing(tmp_path, capsys):
    out = tmp_path / "runs" / "a"
    assert main(["train", "--model", "cifar-resnet8", "--dataset", "shapes", "--train-size", "128", "--test-size",
                 "64", "--steps", "6", "--batch-size", "32", "--probe-every", "3", "--device", "cpu", "--seed", "1",
                 "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["run_dir"] == str(out) and record["state"] == "completed"
    assert 0 <= record["train_error"] <= 1 and 0 <= record["test_error"] <= 1 and record["images_per_sec"] > 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert main(["runs", str(tmp_path / "runs"), "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["state"] == "completed" and summary["model"] == "cifar-resnet8"
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "completed" in capsys.readouterr().out


@pytest.mark.parametrize("args,reason", [
    (["--steps", "0"], "--steps must be"),
    (["--steps", "5", "--epochs", "1"], "exactly one of --steps or --epochs"),
    (["--dataset", "imagenet21k", "--steps", "2"], "unknown data set"),
    (["--model", "cifar-resnet9", "--steps", "2"], "nearest valid"),
    (["--image-size", "4", "--steps", "2"], "--image-size must be"),
])
def test_cli_train_bad_input(tmp_path, capsys, args, reason):
    code = main(["train", "--device", "cpu", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and reason.lower() in err[0].lower(), err


def test_killed_training_leaves_readable_records_and_resumes(tmp_path, capsys):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "explorer", "train", "--model", "cifar-resnet8", "--train-size", "256",
               "--test-size", "64", "--steps", "2000", "--batch-size", "32", "--log-every", "2",
               "--checkpoint-every", "4", "--device", "cpu", "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (out / "checkpoint.pt").exists() and len(Run(out).metrics().records) >= 4, timeout=120)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    run = Run(out)
    assert run.status()["state"] == "running"
    before = run.metrics()
    assert len(before.records) >= 4 and len(before.problems) <= 1  # at most a half-written last line
    _wait_for(lambda: not pid_alive(Run(out).status().get("pid")), timeout=60)  # a worker process too
    status = (out / "status.json").read_bytes()
    resumed_from = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert main(["runs", str(tmp_path), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    # Killed mid-step it shows as interrupted (a worker that saw its manager die stops itself), and
    # the listing only reads: the job manager marks the run on --resume.
    assert listed["state"] in ("interrupted", "stopped") and f"{resumed_from}" in listed["message"], listed
    assert (out / "status.json").read_bytes() == status
    config = json.loads((out / "config.json").read_text())
    config["optim"]["steps"] = resumed_from + 4  # finish soon
    (out / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(out), "--json"]) == 0
    steps = [m["step"] for m in run.metrics().records if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == resumed_from + 4
    probes = [p["step"] for p in run.probes().records if p["kind"] == "grad_norm"]
    assert probes == sorted(set(probes))
