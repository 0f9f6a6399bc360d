"""The run store: a run is a folder that pandas, a notebook or the app can open.

    config.json      the RunConfig
    metrics.jsonl    {"step", "epoch", "split": "train"|"test", "loss", "error", "lr", "time", ...}
    probes.jsonl     {"step", "kind": "response_std", "layers": [{"name", "std"}]}
                     {"step", "kind": "grad_norm", "blocks": [{"name", "total", "shortcut", "residual"}],
                      "layers": [{"name", "weight_grad"}]}
    status.json      {"state", "message", "step", "total_steps", "pid", "updated", "checkpoint_step", ...}
    model.pt         the latest state_dict (torch.load(..., weights_only=True))
    checkpoint.pt    model, optimiser and step, to resume

Every record is flushed as it is written, so a killed process leaves every record up to its last
one readable; a half-written last line is skipped and reported by the readers. The readers parse
only what was appended since their last read (explorer/train/jsonl.py).

A resumed run continues from its checkpoint at step K with the records made before K's next step:
metrics up to step K (they carry the steps done) and probes before step K (they carry the 0-based
step they were taken at, before that step's update). A run that had no checkpoint starts over.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import torch

from explorer.train.jsonl import CACHE, Records, last_records, read_jsonl

STATES = ("queued", "running", "paused", "completed", "stopped", "diverged", "failed", "interrupted")
ACTIVE_STATES = ("queued", "running", "paused")
DEFAULT_RUNS_DIR = Path(os.environ.get("RESNET_EXPLORER_RUNS", "runs"))


FULL_BELOW_BYTES = 1 << 20  # a write that failed with less than this free failed for want of space


def _write_atomic(path: Path, text: str) -> None:
    # Named per thread too: the trainer and the job manager may write status.json at once.
    temporary = path.with_suffix(path.suffix + f".tmp{os.getpid()}-{threading.get_ident()}")
    _replacing(path, temporary, lambda: temporary.write_text(text, encoding="utf-8"))


def _replacing(path: Path, temporary: Path, write) -> None:
    """``write()`` the temporary file, then put it in ``path``'s place; on any failure (a full disk,
    Ctrl-C) the temporary file is removed and ``path`` is left as it was."""
    try:
        write()
        os.replace(temporary, path)
    except RuntimeError as error:
        # torch.save reports a full disk as a RuntimeError of its zip writer ("unexpected pos ...").
        full = (free_bytes(path) or 0) < FULL_BELOW_BYTES
        temporary.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | Path) -> int | None:
    """Free space on the disk that holds ``path`` (its nearest existing folder); None if unknown."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full_message(path: str | Path, what: str = "") -> str:
    """One line naming the disk that is full, its free space and what could not be written."""
    free = free_bytes(path)
    room = "unknown space" if free is None else f"{free / 2**20:,.1f} MB"
    return (f"the disk holding {Path(path).absolute().parent} is full ({room} free)"
            + (f": {what} could not be written" if what else "") + "; free space or delete old runs, then resume")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """One run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, path: str | Path, config: dict) -> "Run":
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} is not empty; give a new folder (or resume the run in it)")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        _write_atomic(path / "config.json", json.dumps(config, indent=1) + "\n")
        run.set_status("queued", "waiting to start")
        return run

    @classmethod
    def new_in(cls, root: str | Path, config: dict, label: str) -> "Run":
        """A new run folder under ``root``, named by time and label."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")[:60]
        # A class pressing Start in the same second asks for many names at once, and four hex digits
        # collide now and then (the Runs page shows them as the run's short tag). mkdir without exist_ok
        # claims a name atomically, even against another process, so a taken name just draws again.
        Path(root).mkdir(parents=True, exist_ok=True)
        for _attempt in range(1000):
            path = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{uuid.uuid4().hex[:4]}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls.create(path, config)
        raise RuntimeError(f"no free run-folder name under {root}")

    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    # --- records -------------------------------------------------------------------------------
    def config(self) -> dict:
        try:
            return json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError):
            return {}

    def _append(self, name: str, record: dict) -> None:
        with open(self.path / name, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
            handle.flush()

    def append_metric(self, record: dict) -> None:
        self._append("metrics.jsonl", record)

    def append_probe(self, record: dict) -> None:
        self._append("probes.jsonl", record)

    def metrics(self) -> Records:
        return read_jsonl(self.path / "metrics.jsonl")

    def probes(self) -> Records:
        return read_jsonl(self.path / "probes.jsonl")

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        try:
            status = json.loads((self.path / "status.json").read_text())
            return status if isinstance(status, dict) else {"state": "failed", "message": "status.json is not an object"}
        except FileNotFoundError:
            return {"state": "failed", "message": "no status.json"}
        except (OSError, ValueError):
            return {"state": "failed", "message": "status.json is unreadable"}

    def set_status(self, state: str, message: str = "", **extra) -> dict:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        status = {**self.status(), **extra} if (self.path / "status.json").exists() else dict(extra)
        status.update(state=state, message=message, pid=os.getpid(), updated=time.time())
        _write_atomic(self.path / "status.json", json.dumps(status) + "\n")
        return status

    def update_status(self, **extra) -> dict:
        """Merge ``extra`` into status.json; the state, its message and its owner stay as they are."""
        status = {**self.status(), **extra, "updated": time.time()}
        _write_atomic(self.path / "status.json", json.dumps(status) + "\n")
        return status

    def shown_status(self, live_run_dirs: set[str] | None = None) -> dict:
        """status.json as a listing should show it, without writing anything.

        A run left queued, running or paused by a process that is gone shows as interrupted, with
        the step it restarts from. ``live_run_dirs``: see ``orphaned``.
        """
        status = self.status()
        if orphaned(self, status, live_run_dirs):
            return {**status, "state": "interrupted", "message": interrupted_message(status, self.has_checkpoint())}
        return status

    # --- weights -------------------------------------------------------------------------------
    def save_data_info(self, info: dict) -> None:
        """What a trained model needs to classify a new image: class names, input size, mean and std."""
        _write_atomic(self.path / "data.json", json.dumps(info, indent=1) + "\n")

    def data_info(self) -> dict | None:
        try:
            return json.loads((self.path / "data.json").read_text())
        except (OSError, ValueError):
            return None

    def save_model(self, state_dict: dict) -> None:
        temporary = self.path / "model.pt.tmp"
        _replacing(self.path / "model.pt", temporary, lambda: torch.save(state_dict, temporary))

    def load_model(self) -> dict:
        return torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)

    def save_checkpoint(self, checkpoint: dict) -> None:
        temporary = self.path / "checkpoint.pt.tmp"
        _replacing(self.path / "checkpoint.pt", temporary, lambda: torch.save(checkpoint, temporary))

    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint.pt").exists()

    def load_checkpoint(self) -> dict | None:
        path = self.path / "checkpoint.pt"
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def rewind_to(self, step: int) -> None:
        """Keep exactly the records made before ``step``'s next training step, so that a resumed run
        neither repeats nor loses one: metrics with step <= ``step``, probes with step < ``step``.

        ``step`` is the checkpoint's step, or 0 for a run without one: it starts over with none.
        """
        keep = {"metrics.jsonl": lambda record: _step_of(record) <= step,
                "probes.jsonl": lambda record: _step_of(record) < step}
        for name, kept in keep.items():
            path = self.path / name
            if step <= 0:
                path.unlink(missing_ok=True)
            elif path.exists():
                records = [record for record in read_jsonl(path).records if kept(record)]
                _write_atomic(path, "".join(json.dumps(record, allow_nan=True) + "\n" for record in records))
        self.update_status(checkpoint_step=step if step > 0 else None)

    def write_error_log(self, text: str) -> None:
        """The traceback of a run that failed unexpectedly, for whoever debugs it (when it can be written)."""
        try:
            _write_atomic(self.path / "error.log", text)
        except OSError:  # a full disk: the status's message says what failed
            pass

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        for name in ("metrics.jsonl", "probes.jsonl"):
            CACHE.forget(self.path / name)

    def summary(self, live_run_dirs: set[str] | None = None) -> dict:
        """State and final numbers, for listings; reads only (see ``shown_status``).

        The last train and test records come from the end of metrics.jsonl, not from all of it.
        """
        status, config = self.shown_status(live_run_dirs), self.config()
        last = last_records(self.path / "metrics.jsonl", {split: {"split": split} for split in ("train", "test")})
        model, data = config.get("model"), config.get("data")
        environment = status.get("environment") if isinstance(status.get("environment"), dict) else {}
        return {
            "run_dir": str(self.path), "id": self.id, "state": status.get("state"), "message": status.get("message", ""),
            "model": model.get("name") if isinstance(model, dict) else None,
            "dataset": data.get("dataset") if isinstance(data, dict) else None,
            "step": status.get("step", 0), "total_steps": status.get("total_steps"),
            "train_error": last.get("train", {}).get("error"), "test_error": last.get("test", {}).get("error"),
            "images_per_sec": status.get("images_per_sec"), "checkpoint_step": status.get("checkpoint_step"),
            "precision": environment.get("precision"), "compiled": environment.get("compiled"),
        }


def _step_of(record: dict) -> float:
    step = record.get("step")
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else float("inf")


def list_runs(root: str | Path = DEFAULT_RUNS_DIR) -> list[Run]:
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(path) for path in root.iterdir() if (path / "config.json").exists()]
    return sorted(runs, key=lambda run: run.path.name)


def orphaned(run: Run, status: dict, live_run_dirs: set[str] | None = None) -> bool:
    """Whether ``run`` is left queued, running or paused by a process that is gone.

    A run owned by another live process (a CLI training in another terminal) is not. With
    ``live_run_dirs`` (the runs this process is training), one owned by this process but not among
    them lost its job (a restarted server); without it, this process's own runs count as live.
    """
    if status.get("state") not in ACTIVE_STATES:
        return False
    pid = status.get("pid")
    if pid == os.getpid():
        return live_run_dirs is not None and str(run.path) not in live_run_dirs
    return not pid_alive(pid)


def interrupted_message(status: dict, has_checkpoint: bool) -> str:
    """What an interrupted run says: where it was, and the step it will restart from."""
    where = f"interrupted at step {status.get('step', 0)} when its process ended"
    if not has_checkpoint:
        return f"{where}, before its first checkpoint; restarts from step 0"
    checkpoint = status.get("checkpoint_step")
    if isinstance(checkpoint, int) and checkpoint > 0:
        return f"{where}; resumes from the checkpoint at step {checkpoint}"
    return f"{where}; resumes from its last checkpoint"  # a run saved before checkpoint_step was recorded


def mark_interrupted(root: str | Path, live_run_dirs: set[str] = frozenset()) -> list[Run]:
    """Runs left queued, running or paused by a process that is gone are marked interrupted.

    For the job manager that takes over a runs folder; a listing uses ``Run.shown_status``, which
    writes nothing. ``live_run_dirs``: the runs this process is training (see ``orphaned``).
    """
    marked = []
    for run in list_runs(root):
        status = run.status()
        if orphaned(run, status, set(live_run_dirs)):
            run.set_status("interrupted", interrupted_message(status, run.has_checkpoint()))
            marked.append(run)
    return marked
