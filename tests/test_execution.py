"""Where jobs run and in which order: worker processes, the fair queue, owners, dead workers and servers."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.execution import LocalBackend, OnThisMachine, cpu_share
from explorer.train.jobs import JobManager, NotYours, resolve_backend
from explorer.train.store import Run
from explorer.train.trainer import Control, TrainResult
from tests.conftest import ROOT


def tiny(steps=12, checkpoint_every=200, log_every=4) -> RunConfig:
    return RunConfig(model=ModelConfig(name="cifar-resnet8"),
                     data=DataConfig(dataset="shapes", train_size=256, test_size=64, image_size=16),
                     optim=OptimConfig(steps=steps, batch_size=32),
                     probes=ProbeConfig(probe_every=4, log_every=log_every, eval_every=8,
                                        checkpoint_every=checkpoint_every),
                     device="cpu")


def wait_for(condition, timeout=90):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# --- the queue, with a backend whose jobs end when the test says -------------------------------


class HeldHandle:
    def __init__(self, spec, control):
        self.spec, self.control, self.release = spec, control, threading.Event()

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.time() + timeout
        while not (self.release.is_set() or self.control.stop_requested):  # a stopped job ends, as a real one
            if deadline is not None and time.time() > deadline:
                return False
            time.sleep(0.01)
        return True

    def outcome(self):
        return TrainResult(self.spec.run_dir, "completed", "done", 1, 1, None, None, None), ""


class HeldBackend(OnThisMachine):
    """Starts nothing: records which jobs were started, in order, and ends one when told."""

    name = "held"

    def __init__(self):
        self.started: list[HeldHandle] = []

    def new_control(self):
        return Control()

    def start(self, spec, control):
        handle = HeldHandle(spec, control)
        self.started.append(handle)
        return handle

    def cpu_threads(self, concurrent):
        return cpu_share(concurrent, cores=8)

    def shutdown(self):
        for handle in self.started:
            handle.release.set()

    def started_dirs(self):
        return [handle.spec.run_dir for handle in self.started]


def test_a_freed_slot_goes_to_the_session_with_the_fewest_runs_training(tmp_path):
    backend = HeldBackend()
    manager = JobManager(tmp_path, max_concurrent=2, backend=backend, per_owner=2)
    alice = [manager.submit(tiny(), owner="alice") for _ in range(3)]
    bob = manager.submit(tiny(), owner="bob")
    assert backend.started_dirs() == [alice[0].run_dir, alice[1].run_dir]
    assert manager.queue_position(alice[2].run_dir) == 1 and manager.queue_position(bob.run_dir) == 2
    assert "2 of 2 are training" in manager.waiting_reason(bob.run_dir)
    backend.started[0].release.set()
    wait_for(lambda: len(backend.started) == 3)
    assert backend.started_dirs()[2] == bob.run_dir  # not alice's third, although it was queued first
    assert bob.run.status()["owner"] == "bob"
    manager.shutdown()


def test_one_session_cannot_take_every_slot(tmp_path):
    backend = HeldBackend()
    manager = JobManager(tmp_path, max_concurrent=3, backend=backend, per_owner=2)
    alice = [manager.submit(tiny(), owner="alice") for _ in range(3)]
    assert backend.started_dirs() == [alice[0].run_dir, alice[1].run_dir]  # a slot stays free for others
    assert "a session trains at most 2 runs at once" in manager.waiting_reason(alice[2].run_dir)
    shared = manager.submit(tiny())  # the CLI's or the instructor's runs are not held to a session's share
    carol = manager.submit(tiny(), owner="carol")
    assert backend.started_dirs()[2] == shared.run_dir and manager.queue_position(carol.run_dir) == 2
    manager.shutdown()


def test_the_nets_of_a_group_share_the_cores_whatever_else_is_queued(tmp_path):
    backend = HeldBackend()
    manager = JobManager(tmp_path, max_concurrent=4, backend=backend)
    manager.submit(tiny())  # another session's run, alone
    pair = manager.submit_group([tiny() for _ in range(2)], group="g")
    manager.submit_group([tiny() for _ in range(4)], group="h")  # one starts, three wait
    # 8 cores: all to the lone run, over 2 for the pair, over 4 for the four nets; never what else waits.
    assert [handle.spec.threads for handle in backend.started] == [8, 4, 4, 2]
    backend.started[1].release.set()
    wait_for(lambda: pair[0].finished and len(backend.started) == 5)
    assert backend.started[4].spec.threads == 2
    # Resumed, a run gets the count it trained with, so the same seed gives the same curves.
    pair[0].run.set_status("stopped", "stopped")
    assert manager.resume(pair[0].run_dir).group_size == 2
    manager.shutdown()
    assert cpu_share(4, cores=8) == 2


def test_a_session_controls_only_its_own_runs(tmp_path):
    backend = HeldBackend()
    manager = JobManager(tmp_path, max_concurrent=1, backend=backend)
    running = manager.submit(tiny(), owner="alice")
    queued = manager.submit(tiny(), owner="alice")
    for action in (manager.pause, manager.stop, manager.resume):
        with pytest.raises(NotYours, match="another session"):
            action(running.run_dir, by="bob")
    assert not running.control.paused and not running.control.stop_requested
    assert manager.pause(running.run_dir, by="alice") == "pausing" and running.control.paused
    assert manager.stop(queued.run_dir, by=None) == "stopped before it started"  # the instructor may
    assert queued.run.status()["state"] == "stopped" and queued.result.state == "stopped"
    manager.shutdown()


def test_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown execution backend 'gpu-farm'; valid: local, thread, ray"):
        resolve_backend("gpu-farm")


# --- real worker processes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_backend():
    backend = LocalBackend()
    backend.warm()
    return backend


def test_a_run_trains_in_a_worker_process_not_in_the_callers(tmp_path, local_backend):
    manager = JobManager(tmp_path, max_concurrent=2, backend=local_backend)
    jobs = manager.submit_group([tiny(), tiny()], group="pair")
    results = [manager.wait(job.run_dir, 120) for job in jobs]
    assert [result.state for result in results] == ["completed", "completed"]
    for job in jobs:
        assert job.run.status()["pid"] != os.getpid()  # the worker wrote it
        assert {"config.json", "data.json", "metrics.jsonl", "probes.jsonl", "model.pt"} <= {
            path.name for path in job.run.path.iterdir()}
    # The two nets of a pair share the cores: half each (one thread each on 2 cores).
    threads = cpu_share(2)
    assert f", {threads} thread" in jobs[0].run.status()["environment"]["device"]


def test_pause_resume_and_stop_reach_a_worker_process(tmp_path, local_backend):
    manager = JobManager(tmp_path, max_concurrent=1, backend=local_backend)
    job = manager.submit(tiny(steps=2000, log_every=2))
    wait_for(lambda: job.run.status().get("step", 0) >= 4)
    manager.pause(job.run_dir)
    wait_for(lambda: job.run.status()["state"] == "paused")
    paused_at = job.run.status()["step"]
    time.sleep(0.5)
    assert job.run.status()["step"] == paused_at
    manager.resume(job.run_dir)
    wait_for(lambda: job.run.status()["state"] == "running")
    manager.stop(job.run_dir)
    result = manager.wait(job.run_dir, 60)
    assert result.state == "stopped" and "resumable" in result.message


def test_a_worker_trains_below_the_priority_of_the_process_that_serves_pages_in_its_session(tmp_path, local_backend):
    from explorer.train.worker import WORKER_NICENESS

    manager = JobManager(tmp_path, max_concurrent=1, backend=local_backend)
    job = manager.submit(tiny(steps=2000, log_every=2))
    wait_for(lambda: job.run.status().get("step", 0) >= 2)
    worker_niceness = os.getpriority(os.PRIO_PROCESS, job.handle.pid)
    worker_session = os.getsid(job.handle.pid)
    manager.stop(job.run_dir)
    assert manager.wait(job.run_dir, 60).state == "stopped"
    assert worker_niceness == min(19, os.nice(0) + WORKER_NICENESS)  # 10 against this process's 0 in CI
    # Under Linux's autogroup scheduling the CPU is shared between sessions first and niceness counts
    # only within one: a worker in a session of its own would weigh as much as the server.
    assert worker_session == os.getsid(0)


def test_a_killed_worker_leaves_its_run_interrupted_and_resumable(tmp_path, local_backend):
    manager = JobManager(tmp_path, max_concurrent=1, backend=local_backend)
    job = manager.submit(tiny(steps=2000, checkpoint_every=4, log_every=2))
    wait_for(lambda: (job.run.status().get("checkpoint_step") or 0) >= 4)
    os.kill(job.handle.pid, signal.SIGKILL)
    result = manager.wait(job.run_dir, 60)
    status = job.run.status()
    assert result.state == status["state"] == "interrupted"
    assert "killed by signal 9" in status["message"]
    assert f"checkpoint at step {status['checkpoint_step']}" in status["message"]
    config = json.loads((job.run.path / "config.json").read_text())
    config["optim"]["steps"] = status["checkpoint_step"] + 4  # finish soon
    (job.run.path / "config.json").write_text(json.dumps(config))
    resumed = manager.resume(job.run_dir)
    assert manager.wait(resumed.run_dir, 120).state == "completed"
    steps = [m["step"] for m in job.run.metrics().records if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == config["optim"]["steps"]


SERVER = """
import sys, time
from explorer.train.jobs import JobManager
from tests.test_execution import tiny
if __name__ == "__main__":
    manager = JobManager(sys.argv[1], max_concurrent=1, backend="local")
    job = manager.submit(tiny(steps=100000, checkpoint_every=4, log_every=2))
    print(job.run_dir, flush=True)
    time.sleep(600)
"""


def test_a_worker_whose_server_died_stops_with_a_checkpoint(tmp_path):
    """A server killed outright (no exit handlers run) leaves no worker training unseen."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        run = Run(server.stdout.readline().strip())
        wait_for(lambda: run.status().get("step", 0) >= 4, timeout=120)
    finally:
        server.kill()
        server.wait()
    wait_for(lambda: run.status()["state"] != "running", timeout=30)
    status = run.status()
    assert status["state"] == "stopped" and "resumable" in status["message"]
    assert (run.path / "checkpoint.pt").exists()


def test_finished_runs_leave_no_open_descriptor_behind(tmp_path):
    """Each run's worker left its pipe and process handles open in the server: 3 descriptors a run,
    until a server under the usual limit of 1,024 open files stopped starting runs (issue 21)."""
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    manager = JobManager(tmp_path, max_concurrent=2, backend=LocalBackend())
    config = tiny(steps=1)

    def pair(group: str) -> None:
        for job in manager.submit_group([config, config], group=group):
            assert manager.wait(job.run_dir, timeout=120) is not None
        wait_for(lambda: not manager.active())

    pair("warm")  # the fork server and its connection: opened once, kept
    before = open_descriptors()
    for index in range(5):
        pair(f"pair-{index}")
    assert open_descriptors() - before <= 1, f"{open_descriptors() - before} descriptors left by 10 runs"
    manager.shutdown()


def test_the_instructors_runs_take_the_next_free_slots_ahead_of_the_class(tmp_path):
    """An instructor who starts the Fig. 6 preset after the class pressed Start does not wait behind
    every student's queued runs (issue 21)."""
    backend = HeldBackend()
    manager = JobManager(tmp_path, max_concurrent=2, backend=backend, per_owner=1)
    students = [manager.submit(tiny(), owner=f"student-{index}") for index in range(5)]
    assert backend.started_dirs() == [students[0].run_dir, students[1].run_dir]
    preset = manager.submit_group([tiny() for _ in range(4)], group="fig6")  # the instructor's: shared
    assert [manager.queue_position(job.run_dir) for job in preset] == [1, 2, 3, 4]
    assert manager.queue_position(students[2].run_dir) == 5
    backend.started[0].release.set()
    wait_for(lambda: len(backend.started) == 3)
    backend.started[1].release.set()
    wait_for(lambda: len(backend.started) == 4)
    assert backend.started_dirs()[2:] == [preset[0].run_dir, preset[1].run_dir]
    manager.shutdown()
