"""Where a training job runs: the execution backends behind the one job API (explorer/train/jobs.py).

    local    worker processes on this machine, the default: the Streamlit server (or the CLI) only
             queues, polls and draws; each run trains in a process of its own
    thread   threads in the calling process: for notebooks and tests that want no processes
    ray      Ray actors on a cluster (explorer/train/ray_backend.py; needs requirements-cluster.txt)

A backend starts a job and gives back a ``Handle``: pause, resume, stop, wait, and the outcome,
which is the trainer's ``TrainResult`` or, when the worker died, None and the reason. Everything
else a run produces goes to its run folder, so pages read the same records whichever backend ran it.

Why processes, measured on the 2-core machine (bench/results/execution-*): training in threads
inside the Streamlit server made the Fig. 6 preset take 91-113 s with the page open against 53-57 s
in a plain process; the server's own work (script runs, polling, garbage) shares the interpreter
with the training threads. A process per run avoids that. How many threads each: torch in every
process would otherwise ask for every core, and four processes with two threads each on two cores
oversubscribe; a process gets the cores divided by the runs that will train at once (at least one).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing import connection
from contextlib import contextmanager
from multiprocessing import spawn
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from explorer.device import describe_device, resolve_device
from explorer.train import worker
from explorer.train.config import RunConfig
from explorer.train.store import Run
from explorer.train.trainer import Control, TrainResult, train



@dataclass(frozen=True)
class JobSpec:
    """What a backend needs to run one job; plain data, so it travels to a process or a cluster."""

    config: dict  # RunConfig.to_json()
    run_dir: str
    checked: bool  # validated and fit-checked already (the trainer skips those checks)
    threads: int  # torch intra-op threads for this run


@dataclass(frozen=True)
class TaskSpec:
    """A computation that is not a training run (an analysis of a trained run), run where runs train.

    ``target`` names a function as ``"package.module:function"``, imported where it runs (so this
    layer needs no import of it); it is called with ``kwargs`` and returns a JSON-able dict.
    """

    target: str
    kwargs: dict
    threads: int
    device: str = "cpu"  # "cuda" asks the backend for a GPU


class TaskHandle(Protocol):
    def wait(self, timeout: float | None = None) -> bool:
        """True once the task has ended (within ``timeout`` seconds)."""

    def outcome(self) -> tuple[dict | None, str]:
        """After ``wait``: the target's dict, or None and why there is none (its refusal, or a dead worker)."""


class Handle(Protocol):
    control: Control

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has ended (within ``timeout`` seconds)."""

    def outcome(self) -> tuple[TrainResult | None, str]:
        """After ``wait``: the trainer's result, or None and why the worker ended without one."""


class Backend(Protocol):
    name: str

    def new_control(self) -> Control:
        """A control a job can be paused or stopped with before it starts, and that its worker reads."""

    def start(self, spec: JobSpec, control: Control) -> Handle:
        """Start the job now (the manager has decided that it may)."""

    def cpu_threads(self, concurrent: int) -> int:
        """Torch threads for a run while ``concurrent`` runs train at once."""

    def start_task(self, spec: TaskSpec) -> TaskHandle:
        """Start a computation that is not a training run (no queue: the caller limits how many)."""

    def shutdown(self) -> None:
        """Release what the backend holds (after the manager has stopped its jobs)."""

    checks_fit_here: bool  # whether this machine's memory is the memory runs train in

    def training_device(self, choice: str) -> str:
        """The device type ("cpu", "cuda", "mps") a run asking for ``choice`` trains on where this backend
        runs it; a ValueError in words when nowhere there has it."""

    def describe_where(self, device_type: str) -> str:
        """Where runs on ``device_type`` train, for a page's caption ("NVIDIA H200", "the Ray cluster: ...")."""


class OnThisMachine:
    """Devices for backends that train here: what this machine has."""

    checks_fit_here = True

    def training_device(self, choice: str) -> str:
        return resolve_device(choice).type

    def describe_where(self, device_type: str) -> str:
        return describe_device(torch.device(device_type))


def cpu_share(concurrent: int, cores: int | None = None) -> int:
    """Cores divided among the runs that train at once, at least one each."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, concurrent))


# --- thread ------------------------------------------------------------------------------------


class ThreadHandle:
    def __init__(self, spec: JobSpec, control: Control):
        self.control = control
        self._result: TrainResult | None = None
        self._thread = threading.Thread(target=self._work, args=(spec,), name=f"train-{os.path.basename(spec.run_dir)}",
                                        daemon=True)
        self._thread.start()

    def _work(self, spec: JobSpec) -> None:
        self._result = train(RunConfig.from_json(spec.config), Run(spec.run_dir), self.control, checked=spec.checked)

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def outcome(self) -> tuple[TrainResult | None, str]:
        return self._result, "" if self._result else "its thread ended without a result"


class ThreadTaskHandle:
    def __init__(self, spec: TaskSpec):
        self._answer: dict | None = None
        self._thread = threading.Thread(target=self._work, args=(spec,), name=f"task-{spec.target}", daemon=True)
        self._thread.start()

    def _work(self, spec: TaskSpec) -> None:
        self._answer = worker.call_target(spec)

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def outcome(self) -> tuple[dict | None, str]:
        return _answered(self._answer, "its thread ended without an answer")


def _answered(answer: dict | None, otherwise: str) -> tuple[dict | None, str]:
    if answer is None:
        return None, otherwise
    return answer.get("result"), answer.get("error", "")


class ThreadBackend(OnThisMachine):
    """Threads in this process; several CPU runs share it through explorer/threads.py."""

    name = "thread"
    shares_files = True  # a task reads the run folder where it is

    def start_task(self, spec: TaskSpec) -> ThreadTaskHandle:
        return ThreadTaskHandle(spec)

    def new_control(self) -> Control:
        return Control()

    def start(self, spec: JobSpec, control: Control) -> ThreadHandle:
        return ThreadHandle(spec, control)

    def cpu_threads(self, concurrent: int) -> int:
        return cpu_share(concurrent)

    def shutdown(self) -> None:
        pass


# --- local processes ---------------------------------------------------------------------------


class _WorkerProcess:
    """A worker process and the pipe it answers on, once; shared by runs and tasks."""

    # A worker that has answered and is still alive this long after is killed: its answer is in, and
    # a hang in its exit (a stuck thread, a library's teardown) must not hold a training slot for ever.
    EXIT_GRACE_SECONDS = 60.0

    def __init__(self, process, results):
        self._process, self._results = process, results
        self._message = None
        self._pipe_done = False  # the answer was read, or the worker closed its end without one
        self._answered_at: float | None = None
        self._ended: tuple[int | None, int | None] | None = None  # (pid, exit code) once released
        self._release_lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        if self._ended is not None:
            return True
        try:
            ended = self._wait(timeout)
        except ValueError:  # another thread's wait released the process meanwhile ("process object is closed")
            if self._ended is None:
                raise
            return True
        if ended:
            with self._release_lock:
                if self._ended is None:
                    self._release()
        return True if ended else self._ended is not None

    def _release(self) -> None:
        """Once the worker has ended: read what it sent, then close our end of its pipe and the
        process's own handles. Left open, each run kept three descriptors for the life of the server
        (a server stopped starting runs after about 330, under the usual limit of 1,024)."""
        self._received()
        self._ended = (self._process.pid, self._process.exitcode)
        self._pipe_done = True
        self._results.close()
        self._process.close()

    def _wait(self, timeout: float | None) -> bool:
        # The answer is read as soon as it comes: a worker blocks in send() until a large answer
        # (a 2-D landscape of 61+ points a side is over the pipe's 64 KiB) is read, so joining
        # first would wait for ever. Once it is read, only the process's end is waited for: the
        # pipe then stays readable (end of file), and waiting on it too spun this thread, and with
        # it the server's interpreter, for as long as a worker took to exit (seconds under load).
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._process.is_alive():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._answered_at is not None:
                grace = self._answered_at + self.EXIT_GRACE_SECONDS - time.monotonic()
                if grace <= 0:
                    self._process.kill()  # and its end is waited for below
                else:
                    left = grace if left is None else min(left, grace)
            waiting_on = [self._process.sentinel] if self._pipe_done else [self._results, self._process.sentinel]
            ready = connection.wait(waiting_on, left)
            if self._results in ready:
                self._received()
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not ready and self._answered_at is None:
                break
        self._process.join(0 if self._process.is_alive() else None)
        return not self._process.is_alive()

    def _received(self):
        """What the worker sent, or None (nothing yet, or it died first)."""
        if self._message is None and not self._pipe_done:
            try:
                if self._results.poll():
                    self._message = self._results.recv()
                    self._pipe_done = True
                    self._answered_at = time.monotonic()
            except (EOFError, OSError):
                self._pipe_done = True
        return self._message

    def _why_ended(self) -> str:
        code = self._ended[1] if self._ended is not None else self._process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return f"its worker process {how}"


class ProcessHandle(_WorkerProcess):
    def __init__(self, process, control: Control, results):
        super().__init__(process, results)
        self.control = control

    @property
    def pid(self) -> int | None:
        return self._ended[0] if self._ended is not None else self._process.pid

    def outcome(self) -> tuple[TrainResult | None, str]:
        message = self._received()
        return (TrainResult(**message), "") if message is not None else (None, self._why_ended())

    def kill(self) -> None:
        """For tests and the load benchmark: the worker dies as it would if the OOM killer took it."""
        if self._ended is None:
            self._process.kill()


class ProcessTaskHandle(_WorkerProcess):
    def outcome(self) -> tuple[dict | None, str]:
        return _answered(self._received(), self._why_ended())


class LocalBackend(OnThisMachine):
    """A worker process per run, forked from a server process that has imported torch once."""

    name = "local"
    shares_files = True

    def __init__(self):
        # forkserver: each worker forks from a small server that imported the trainer once (a new
        # process starts in milliseconds, not the seconds importing torch takes), and never from the
        # Streamlit server, whose threads and locks a fork would copy mid-flight.
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            self._context.set_forkserver_preload(["explorer.train.worker"])
            # The fork server starts as `python -c ...` and (up to Python 3.11) ignores the sys.path it
            # is handed, so from another working folder its preload fails silently and every worker
            # imports torch again (4 s here). It inherits the environment: put our root on its path.
            root = str(Path(__file__).resolve().parents[2])
            paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if root not in paths:
                os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, paths)])

    def warm(self) -> None:
        """Start the fork server now (a second or two), so that the first run starts at once."""
        if self._context.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def new_control(self) -> Control:
        return Control(event=self._context.Event)

    def start(self, spec: JobSpec, control: Control) -> ProcessHandle:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker.run_job, args=(spec, control, sender, os.getpid()),
                                        name=f"train-{os.path.basename(spec.run_dir)}", daemon=True)
        with _without_main_module():
            process.start()
        sender.close()  # the worker holds the only writing end: a dead worker reads as EOF
        return ProcessHandle(process, control, receiver)

    def cpu_threads(self, concurrent: int) -> int:
        return cpu_share(concurrent)

    def start_task(self, spec: TaskSpec) -> ProcessTaskHandle:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(target=worker.run_task, args=(spec, sender), name=f"task-{spec.target}",
                                        daemon=True)
        with _without_main_module():
            process.start()
        sender.close()
        return ProcessTaskHandle(process, receiver)

    def shutdown(self) -> None:
        pass


_main_lock = threading.Lock()


@contextmanager
def _without_main_module():
    """Start a worker without it importing this process's main module again.

    multiprocessing makes every new process import the parent's ``__main__`` (as ``__mp_main__``)
    when it has a file. Inside Streamlit that is the page script being run, so each worker would
    run the whole app before training. The worker needs nothing from it (its target and arguments
    are importable by name), so the instructions to import it are left out while it starts.
    """
    with _main_lock:
        original = spawn.get_preparation_data

        def without_main(name):
            return {key: value for key, value in original(name).items() if not key.startswith("init_main")}

        spawn.get_preparation_data = without_main
        try:
            yield
        finally:
            spawn.get_preparation_data = original
