"""A full disk at any write (issue 21): the run ends failed with one line naming the disk and its free
space, what was written before stays readable, no temporary file is left, nothing waits for ever."""

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from explorer.train import store
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.execution import ThreadBackend
from explorer.train.jobs import RECORDS_BYTES, JobManager, check_space, space_needed
from explorer.train.jsonl import read_jsonl
from explorer.train.store import Run
from tests.conftest import ROOT


def tiny(steps: int = 12) -> RunConfig:
    return RunConfig(model=ModelConfig(name="cifar-resnet8"),
                     data=DataConfig(dataset="shapes-easy", train_size=64, test_size=32, image_size=16),
                     optim=OptimConfig(steps=steps, batch_size=16),
                     probes=ProbeConfig(probe_every=2, log_every=2, eval_every=4, checkpoint_every=4), device="cpu")


def full_after(calls: int):
    """A write that succeeds ``calls`` times, then finds the disk full."""
    count = {"n": 0}

    def check(path) -> None:
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return check


def _fill(monkeypatch, kind: str, calls: int) -> None:
    check = full_after(calls)
    if kind in ("metrics", "probes"):
        append = Run._append

        def failing_append(self, name, record):
            if name == f"{kind}.jsonl":
                check(self.path / name)
            return append(self, name, record)
        monkeypatch.setattr(Run, "_append", failing_append)
    elif kind in ("checkpoint", "model"):
        save = torch.save

        def failing_save(obj, path, *args, **kwargs):
            if Path(path).name.startswith(f"{kind}.pt"):
                save({"partial": torch.zeros(1)}, path)  # part of a file on the disk, then the failure
                check(path)
            return save(obj, path, *args, **kwargs)
        monkeypatch.setattr(store.torch, "save", failing_save)
    else:  # status.json and data.json: through the atomic writer
        write = store._write_atomic

        def failing_write(path, text):
            if Path(path).name == f"{kind}.json":
                check(path)
            return write(path, text)
        monkeypatch.setattr(store, "_write_atomic", failing_write)


@pytest.mark.parametrize("kind, calls", [("metrics", 3), ("probes", 2), ("checkpoint", 1), ("model", 0),
                                         ("status", 3), ("data", 0)])
def test_a_full_disk_at_each_kind_of_write_fails_the_run_in_one_line(tmp_path, monkeypatch, kind, calls):
    _fill(monkeypatch, kind, calls)
    manager = JobManager(tmp_path, max_concurrent=1, backend=ThreadBackend())
    job = manager.submit(tiny())
    result = manager.wait(job.run_dir, timeout=120)
    assert result is not None, "the job never ended"
    assert result.state == "failed" and "is full" in result.message and "MB free" in result.message, result.message
    assert "\n" not in result.message and "Traceback" not in result.message
    leftovers = [path.name for path in Path(job.run_dir).iterdir() if ".tmp" in path.name]
    assert not leftovers, leftovers
    records = read_jsonl(Path(job.run_dir) / "metrics.jsonl")
    assert all(isinstance(record, dict) for record in records.records)
    shown = job.run.shown_status({str(job.run_dir)} if not job.finished else set())
    assert shown.get("state") not in ("running", "queued"), shown
    manager.shutdown()


def test_torch_saves_full_disk_error_is_named_as_one(tmp_path, monkeypatch):
    """torch.save reports a full disk as its zip writer's RuntimeError; with the disk full it is one."""
    def broken_save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(store.torch, "save", broken_save)
    monkeypatch.setattr(store, "free_bytes", lambda path: 4096)
    run = Run.create(tmp_path / "run", tiny().to_json())
    with pytest.raises(OSError) as raised:
        run.save_checkpoint({"w": torch.zeros(3)})
    assert store.is_disk_full(raised.value)
    assert not any(".tmp" in path.name for path in run.path.iterdir())
    monkeypatch.setattr(store, "free_bytes", lambda path: 10 << 30)  # with room: another fault, as it was
    with pytest.raises(RuntimeError):
        run.save_checkpoint({"w": torch.zeros(3)})


def test_runs_the_disk_has_no_room_for_are_refused_before_any_folder_is_made(tmp_path, monkeypatch):
    needed = space_needed([tiny(), tiny()])
    assert needed > 2 * RECORDS_BYTES
    monkeypatch.setattr("explorer.train.jobs.free_bytes", lambda path: needed - 1)
    with pytest.raises(ValueError, match=r"not enough disk space: these 2 runs need about .* MB .* MB free"):
        check_space(tmp_path, [tiny(), tiny()])
    manager = JobManager(tmp_path, max_concurrent=1, backend=ThreadBackend())
    with pytest.raises(ValueError, match="not enough disk space"):
        manager.submit_group([tiny(), tiny()], group="g")
    assert not list(tmp_path.iterdir())


def _mount_tmpfs(where: Path, megabytes: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
                          capture_output=True, check=False)
    return done.returncode == 0


def test_the_cli_on_a_real_small_disk_returns_at_once_with_one_line(tmp_path):
    """A tmpfs that fills while the run trains: the CLI returns within seconds, exit status 1, one line."""
    disk = tmp_path / "small-disk"
    if not _mount_tmpfs(disk, 6):
        pytest.skip("cannot mount a tmpfs here (needs root and mount): the ENOSPC matrix above still runs")
    try:
        out = disk / "run"
        filler = disk / "filler"
        process = subprocess.Popen(
            [sys.executable, "-m", "explorer", "train", "--model", "cifar-resnet8", "--dataset", "shapes-easy",
             "--train-size", "64", "--test-size", "32", "--image-size", "16", "--steps", "100000",
             "--batch-size", "16", "--checkpoint-every", "5", "--log-every", "1", "--probe-every", "1",
             "--device", "cpu", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists():  # training, and checkpointing: now the disk fills up
            assert process.poll() is None and time.time() < deadline, process.communicate()
            time.sleep(0.1)
        with open(filler, "wb") as file:
            try:
                while True:
                    file.write(b"\0" * (1 << 16))
                    file.flush()
            except OSError:
                pass
        started = time.time()
        _, errors = process.communicate(timeout=60)
        assert time.time() - started < 30, "the CLI took long to give up"
        assert process.returncode == 1, errors
        lines = [line for line in errors.strip().splitlines() if line.strip()]
        assert lines and "is full" in lines[-1] and "Traceback" not in errors, errors
        assert not [path.name for path in out.iterdir() if ".tmp" in path.name]
        filler.unlink()
        assert Run(out).status()["state"] == "failed" or Run(out).shown_status()["state"] == "interrupted"
        assert read_jsonl(out / "metrics.jsonl").records  # what was written before is readable
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_analysis_on_a_full_disk_is_shown_uncached_and_leaves_no_partial_file(runs, tmp_path, monkeypatch):
    from explorer.analysis.tasks import TaskBoard, cache_path

    run_dir = tmp_path / "resnet"
    shutil.copytree(runs["cifar-resnet8"], run_dir)
    write_text = Path.write_text

    def full(self, text, *args, **kwargs):
        if self.suffix == ".tmp":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, text, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", full)
    options = {"images": 32, "device": "cpu"}
    task = TaskBoard(ThreadBackend()).request("evaluate", run_dir, options)
    assert task.ended.wait(120) and task.state == "done", task.message
    assert 0 <= task.result["error"] <= 1
    assert not cache_path("evaluate", run_dir, options).exists()
    assert not [path for path in (run_dir / "analysis").iterdir() if path.suffix == ".tmp"]
