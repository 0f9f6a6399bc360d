"""What runs inside a worker process: one training job, then its result back to the manager.

Imported by the fork server before any job (explorer/train/execution.py), so a worker starts with
torch and the trainer already in memory.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading

import torch

from explorer.train.config import RunConfig
from explorer.train.store import Run
from explorer.train.trainer import Control, train

SERVER_CHECK_SECONDS = 1.0
# Workers train at a lower priority than the process that serves the pages: when a class's runs
# fill every core, the server still gets most of a core when a click needs it (a run loses little).
# With nothing else to run, a niced worker trains as fast as before (bench/results/app-preset-*).
WORKER_NICENESS = 10

# torch.optim imports torch._dynamo when the first optimiser is made: 3.5 s on the 2-core machine.
# Made here, at import, it happens once in the fork server instead of in every worker.
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def run_job(spec, control: Control, results, server_pid: int) -> None:
    """Train ``spec`` (an execution.JobSpec) with ``control``; send the TrainResult's fields to ``results``."""
    _enter_worker(spec.threads)
    _stop_when_gone(server_pid, control)
    result = train(RunConfig.from_json(spec.config), Run(spec.run_dir), control, checked=spec.checked)
    results.send(result.to_json())
    results.close()


def run_task(spec, results) -> None:
    """Run an execution.TaskSpec; send {"result": ...} or {"error": ...} to ``results``."""
    _enter_worker(spec.threads)
    results.send(call_target(spec))
    results.close()


def _enter_worker(threads: int) -> None:
    # Ctrl-C in a terminal reaches every process of the group: the manager asks the run to stop,
    # and the worker must not die inside torch before it has saved its checkpoint.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield_to_pages()
    torch.set_num_threads(threads)


def yield_to_pages() -> None:
    """Lower this worker's priority by WORKER_NICENESS below the process it was forked for (the fork
    server has the server's niceness), where the system lets it. The worker stays in the server's
    session: under Linux's autogroup scheduling (most distributions' default) niceness counts only
    among the processes of one session, and a session of its own would weigh as much as the server's."""
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # a platform or sandbox without it: train at the same priority
        pass


def import_target(target: str):
    """The function named ``"package.module:function"``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def call_target(spec) -> dict:
    """Run ``spec`` (an execution.TaskSpec) here: {"result": its dict} or {"error": one line}. A ValueError is the target's
    refusal, in words for the user; anything else is named by its type and first line."""
    try:
        return {"result": import_target(spec.target)(**spec.kwargs)}
    except ValueError as error:
        return {"error": str(error)}
    except Exception as error:  # noqa: BLE001 - a worker reports, it does not die with a traceback
        lines = str(error).strip().splitlines()
        return {"error": f"{type(error).__name__}: {lines[0][:200] if lines else 'no details'}"}


def _stop_when_gone(server_pid: int, control: Control) -> None:
    """If the process that started this run dies (a killed server), stop with a checkpoint: resumable."""

    def watch() -> None:
        while not control.stop_requested:
            if not _alive(server_pid):
                control.stop()
                return
            threading.Event().wait(SERVER_CHECK_SECONDS)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    # Forked by the fork server, the worker's parent is that server, not the manager's process, so
    # the manager is watched by its pid (taken by the manager when it started this job).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True
