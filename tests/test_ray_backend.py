"""The Ray backend against a local Ray these tests start: records come back, control crosses, a lost worker resumes.

Ray is small here (2 CPUs, a 200 MB object store, no dashboard) and started once for the module;
the backend attaches to it as it would to a notebook's Ray. A lost node is measured in
bench/ray_backend.py (a second cluster of its own would double this file's time).
"""

import ast
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from explorer.train import trainer as trainer_module
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.execution import JobSpec, ThreadBackend
from explorer.train.jobs import JobManager, resolve_backend
from explorer.train.ray_backend import INSTALL, LOOPBACK, RayBackend, RemoteRun

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_cluster():
    # A Ray of its own (not one that `ray start` left on this machine); its workers import this explorer.
    ray.init(address="local", num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
             _node_ip_address=LOOPBACK,
             log_to_driver=False, runtime_env={"py_modules": [str(ROOT / "explorer")], "excludes": ["__pycache__"]})
    yield
    ray.shutdown()


class OneThreadEach(RayBackend):
    """These tests share 2 cores with whatever else runs: two OpenMP threads on a loaded machine trained
    ten times slower than one (measured: 60 steps in 51 s against 5 s), so each run gets one."""

    def cpu_threads(self, concurrent: int) -> int:
        return 1


@pytest.fixture
def manager(ray_cluster, tmp_path):
    manager = JobManager(tmp_path, max_concurrent=2, backend=OneThreadEach())
    yield manager
    manager.shutdown(timeout=30)


def tiny(steps=8, checkpoint_every=4) -> RunConfig:
    return RunConfig(model=ModelConfig(name="cifar-resnet8"),
                     data=DataConfig(dataset="shapes", train_size=128, test_size=32),
                     optim=OptimConfig(steps=steps, batch_size=32),
                     probes=ProbeConfig(probe_every=4, probe_batch=16, log_every=2, eval_every=8,
                                        checkpoint_every=checkpoint_every),
                     device="cpu")


def wait_for(condition, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def train_steps(run) -> list[int]:
    return [record["step"] for record in run.metrics().records if record["split"] == "train"]


def test_a_run_trained_on_ray_leaves_the_same_folder_as_a_local_one(manager, tmp_path):
    job = manager.submit(tiny())
    local = JobManager(tmp_path / "local", backend=ThreadBackend())
    reference = local.submit(tiny())
    assert local.wait(reference.run_dir, 120).state == "completed"
    result = manager.wait(job.run_dir, 120)
    assert result.state == "completed", result.message

    files = {path.name for path in job.run.path.iterdir()}
    assert files == {path.name for path in reference.run.path.iterdir()}
    assert {"config.json", "data.json", "metrics.jsonl", "probes.jsonl", "status.json", "model.pt"} <= files
    status = job.run.status()
    assert status["state"] == "completed" and status["step"] == 8
    assert set(reference.run.status()) <= set(status)
    assert status["ray_worker"]["pid"] != os.getpid()  # it trained in a Ray worker, not here
    for read in ("metrics", "probes"):
        ours, theirs = getattr(job.run, read)().records, getattr(reference.run, read)().records
        assert [sorted(record) for record in ours] == [sorted(record) for record in theirs]
        assert [record["step"] for record in ours] == [record["step"] for record in theirs]
    assert job.run.data_info() == reference.run.data_info()
    weights = torch.load(job.run.path / "model.pt", weights_only=True)
    assert weights.keys() == reference.run.load_model().keys()


def test_pause_resume_and_stop_reach_the_worker(manager):
    job = manager.submit(tiny(steps=160, checkpoint_every=1000))
    wait_for(lambda: job.run.status().get("step", 0) >= 4)
    manager.pause(job.run_dir)
    wait_for(lambda: job.run.status()["state"] == "paused")
    paused_at = job.run.status()["step"]
    time.sleep(1.5)
    assert job.run.status()["step"] == paused_at
    manager.resume(job.run_dir)
    wait_for(lambda: job.run.status()["state"] == "running" and job.run.status()["step"] > paused_at)
    assert manager.stop(job.run_dir) == "stopping"
    result = manager.wait(job.run_dir, 60)
    assert result.state == "stopped" and "resumable" in result.message
    stopped_at = job.run.status()["checkpoint_step"]
    assert paused_at < stopped_at < 160

    resumed = manager.resume(job.run_dir)
    assert manager.wait(resumed.run_dir, 120).state == "completed"
    assert train_steps(job.run) == list(range(2, 161, 2))  # none twice, none lost


def test_a_killed_worker_leaves_the_run_interrupted_and_resumable(manager):
    job = manager.submit(tiny(steps=64, checkpoint_every=4))
    wait_for(lambda: (job.run.status().get("checkpoint_step") or 0) >= 8)
    pid = job.run.status()["ray_worker"]["pid"]
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)  # as the OOM killer or a lost machine would
    result = manager.wait(job.run_dir, 60)
    assert time.perf_counter() - killed < 10
    assert result.state == "interrupted"
    status = job.run.status()
    checkpoint = status["checkpoint_step"]
    assert status["state"] == "interrupted"
    assert "Ray worker died" in status["message"]
    assert f"resumes from the checkpoint at step {checkpoint}" in status["message"]

    resumed = manager.resume(job.run_dir)
    assert manager.wait(resumed.run_dir, 120).state == "completed"
    steps = train_steps(job.run)
    assert steps == list(range(2, 65, 2))  # none twice, none lost
    probes = [(record["kind"], record["step"]) for record in job.run.probes().records]
    # Every 4 steps before the update, and once more for the saved weights at the end (step 64).
    assert sorted(probes) == sorted((kind, step) for kind in ("grad_norm", "response_std") for step in range(0, 65, 4))


def test_a_run_waiting_for_a_ray_cpu_says_so_and_stops_at_once(ray_cluster, tmp_path):
    manager = JobManager(tmp_path, max_concurrent=3, backend=OneThreadEach())  # 3 runs, 2 CPUs: one waits
    jobs = [manager.submit(tiny(steps=5000)) for _ in range(3)]
    wait_for(lambda: sum(job.run.status()["state"] == "running" for job in jobs) == 2)
    waiting = next(job for job in jobs if job.run.status()["state"] == "queued")
    assert waiting.run.status()["message"] == "waiting for Ray to place it (1 CPU)"
    manager.stop(waiting.run_dir)
    result = manager.wait(waiting.run_dir, 10)
    assert result.state == "stopped" and result.message == "stopped before Ray placed it"
    manager.shutdown(timeout=30)
    assert [manager.wait(job.run_dir, 30).state for job in jobs] == ["stopped"] * 3


def test_the_reason_tells_a_lost_node_from_a_dead_worker():
    from explorer.train.ray_backend import _why_lost

    assert _why_lost(ray.exceptions.NodeDiedError("node 3f2a died"), ray) == "its Ray node was lost (node 3f2a died)"
    assert "node was lost or cut off" in _why_lost(ray.exceptions.ActorUnavailableError("Socket closed", None), ray)
    assert _why_lost(ray.exceptions.ActorDiedError(), ray) == (
        "its Ray worker died (the actor died unexpectedly before finishing this task)")


def test_a_run_no_node_can_hold_is_refused_at_start(ray_cluster, tmp_path):
    backend = RayBackend()
    config = tiny().replace(device="cuda")  # this cluster has no GPU
    with pytest.raises(ValueError, match="no node of the Ray cluster has 1 CPU and a GPU"):
        backend.start(JobSpec(config.to_json(), str(tmp_path), True, 1), backend.new_control())
    assert backend.cpu_threads(1) == 2 and backend.cpu_threads(4) == 1


def test_an_unreachable_cluster_is_refused_in_seconds(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    attempts = [({"address": "ray://127.0.0.1:1"}, "ray://127.0.0.1:1", "--ray-address"),
                ({}, "127.0.0.1:1", "RAY_ADDRESS")]  # nothing listens on port 1 of this machine
    for options, address, source in attempts:
        if not options:
            monkeypatch.setenv("RAY_ADDRESS", address)
        start = time.perf_counter()
        with pytest.raises(ValueError) as refused:
            resolve_backend("ray", **options)
        assert time.perf_counter() - start < 5
        message = str(refused.value)
        assert "\n" not in message and address in message and source in message and "ray start --head" in message


def test_the_cli_refuses_an_unreachable_cluster_in_one_line(tmp_path):
    command = [sys.executable, "-m", "explorer", "train", "--backend", "ray", "--ray-address", "ray://127.0.0.1:1",
               "--steps", "2", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ray://127.0.0.1:1" in lines[0]


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as it does where Ray is absent
    with pytest.raises(ValueError, match=f"not installed here: {INSTALL}"):
        RayBackend()


def test_the_remote_run_offers_every_run_method_the_trainer_calls():
    tree = ast.parse(inspect.getsource(trainer_module))
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, (ast.Name, ast.Attribute))
              and (getattr(node.func.value, "id", None) or getattr(node.func.value, "attr", None)) == "run"}
    assert {"set_status", "append_metric", "save_checkpoint", "load_checkpoint"} <= called  # the walk finds them
    assert called <= {name for name in dir(RemoteRun) if not name.startswith("_")}


def test_an_analysis_on_ray_takes_the_run_with_it_and_answers_as_a_local_one(ray_cluster, runs, tmp_path):
    """No shared file system: the run's files travel with the task, the answer comes back as its value."""
    import shutil

    from explorer.analysis.lesion import lesion_study
    from explorer.analysis.tasks import TaskBoard

    run_dir = tmp_path / "resnet"
    shutil.copytree(runs["cifar-resnet8"], run_dir)
    options = {"blocks": 2, "images": 64, "draws": 2, "device": "cpu"}
    backend = OneThreadEach()
    assert backend.shares_files is False
    task = TaskBoard(backend, max_concurrent=1).request("lesion", run_dir, options)
    assert task.ended.wait(180) and task.state == "done", task.message
    here = lesion_study(run_dir, **options)
    assert task.result["run_dir"] == str(run_dir) and task.result["baseline_error"] == here["baseline_error"]
    assert [b["error"] for b in task.result["blocks"]] == [b["error"] for b in here["blocks"]]
    refused = TaskBoard(backend).request("lesion", run_dir, {**options, "blocks": 99, "clip_blocks": False})
    assert refused.ended.wait(180) and refused.state == "failed" and "is more than the" in refused.message


class SeenCluster(RayBackend):
    """A RayBackend that starts no Ray: it sees the nodes the test gives (cluster_nodes)."""

    def __init__(self):
        pass


@pytest.fixture
def cluster_nodes(monkeypatch):
    from explorer.train import ray_backend

    seen = []
    monkeypatch.setattr(ray_backend, "_nodes", lambda: seen[-1])
    return seen


def test_runs_on_a_ray_cluster_take_its_devices_not_this_machines(cluster_nodes, tmp_path):
    from explorer.train.jobs import check_config

    cluster_nodes.append([{"CPU": 16, "GPU": 1}, {"CPU": 4}])
    backend = SeenCluster()
    assert [backend.training_device(choice) for choice in ("auto", "cuda", "cpu")] == ["cuda", "cuda", "cpu"]
    with pytest.raises(ValueError, match="not one a Ray cluster offers"):
        backend.training_device("mps")
    assert backend.describe_where("cuda") == "the Ray cluster's GPUs (2 nodes: 20 CPUs, 1 GPU)"
    on_the_gpu = tiny().replace(device="cuda")
    check_config(on_the_gpu, backend)  # accepted: the cluster has a GPU, wherever this test runs
    if not torch.cuda.is_available():  # this machine alone would refuse it
        with pytest.raises(ValueError, match="no CUDA GPU is available on this machine"):
            check_config(on_the_gpu)
    # The threads a run gets are shared out over every node's CPUs; a GPU run gets at most its GPU node's.
    assert backend._resources("auto", 10) == {"num_cpus": 10, "num_gpus": 1}
    cluster_nodes.append([{"CPU": 8, "GPU": 1}, {"CPU": 64}])
    assert backend._resources("cuda", 18) == {"num_cpus": 8, "num_gpus": 1}
    assert backend._resources("cpu", 18) == {"num_cpus": 18, "num_gpus": 0}
    cluster_nodes.append([{"CPU": 4}])
    assert backend.training_device("auto") == "cpu"
    with pytest.raises(ValueError, match="no node of the Ray cluster has a GPU"):
        check_config(on_the_gpu, backend)


def test_a_backend_that_trains_elsewhere_leaves_the_fit_check_to_the_trainer(tmp_path):
    from test_execution import HeldBackend

    class Elsewhere(HeldBackend):
        checks_fit_here = False

        def training_device(self, choice):
            return "cuda"

    huge = tiny().replace(device="cuda", model=ModelConfig(name="cifar-resnet110"),
                          optim=OptimConfig(steps=8, batch_size=65_536))  # hundreds of GB of activations
    backend = Elsewhere()
    manager = JobManager(tmp_path, max_concurrent=1, backend=backend)
    manager.submit(huge)  # this machine's memory says nothing of the node's: no refusal here...
    assert backend.started[0].spec.checked is False  # ...the trainer checks where the run lands
    manager.shutdown()
    local = HeldBackend()
    manager = JobManager(tmp_path / "local", max_concurrent=1, backend=local)
    with pytest.raises(ValueError, match="try a smaller batch or model"):  # this machine's memory is checked
        manager.submit(huge.replace(device="cpu"))
    manager.submit(tiny())
    assert local.started[0].spec.checked is True
    manager.shutdown()


def test_a_cluster_that_stops_answering_is_a_message_not_a_traceback(monkeypatch):
    from explorer.train import ray_backend

    class LostClient:
        def nodes(self):
            raise ConnectionError("Failed to connect to the Ray client server\nretrying")

    ray_backend._forget_nodes()
    monkeypatch.setattr(ray_backend, "_ray", lambda: LostClient())
    with pytest.raises(ValueError, match=r"^the Ray cluster did not answer \(Failed to connect to the Ray client server\); check"):
        SeenCluster().training_device("auto")
    ray_backend._forget_nodes()
