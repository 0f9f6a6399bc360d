"""The run store: a run is a folder that pandas, a notebook or the app can open.

    config.json      the RunConfig
    metrics.jsonl    {"step", "epoch", "split": "train"|"test", "loss", "error", "lr", "time", ...}
    probes.jsonl     {"step", "kind": "response_std", "layers": [{"name", "std"}]}
                     {"step", "kind": "grad_norm", "blocks": [{"name", "total", "shortcut", "residual"}],
                      "layers": [{"name", "weight_grad"}]}
    status.json      {"state", "message", "step", "total_steps", "pid", "updated", ...}
    model.pt         the latest state_dict (torch.load(..., weights_only=True))
    checkpoint.pt    model, optimiser and step, to resume

Every record is flushed as it is written, so a killed process leaves every record up to its last
one readable; a half-written last line is skipped and reported by the readers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

STATES = ("queued", "running", "paused", "completed", "stopped", "diverged", "failed", "interrupted")
ACTIVE_STATES = ("queued", "running", "paused")
DEFAULT_RUNS_DIR = Path(os.environ.get("RESNET_EXPLORER_RUNS", "runs"))


@dataclass
class Records:
    """What a .jsonl file held, and the lines that could not be read."""

    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_jsonl(path: Path) -> Records:
    result = Records()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return result
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            result.records.append(record)
        except ValueError:
            partial = number == len(lines) and not line.endswith("\n")
            result.problems.append(f"{path.name} line {number}: " + ("half-written (skipped)" if partial else "corrupt (skipped)"))
    return result


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


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
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{uuid.uuid4().hex[:4]}"
        return cls.create(Path(root) / name, config)

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
        torch.save(state_dict, temporary)
        os.replace(temporary, self.path / "model.pt")

    def load_model(self) -> dict:
        return torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)

    def save_checkpoint(self, checkpoint: dict) -> None:
        temporary = self.path / "checkpoint.pt.tmp"
        torch.save(checkpoint, temporary)
        os.replace(temporary, self.path / "checkpoint.pt")

    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint.pt").exists()

    def load_checkpoint(self) -> dict | None:
        path = self.path / "checkpoint.pt"
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run continues from its checkpoint, not from where it died."""
        for name in ("metrics.jsonl", "probes.jsonl"):
            kept = [record for record in read_jsonl(self.path / name).records if record.get("step", 0) <= step]
            _write_atomic(self.path / name, "".join(json.dumps(record) + "\n" for record in kept))

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def summary(self) -> dict:
        """State and final numbers, for listings."""
        status, config = self.status(), self.config()
        metrics = self.metrics().records
        last = {split: next((m for m in reversed(metrics) if m.get("split") == split), {}) for split in ("train", "test")}
        return {
            "run_dir": str(self.path), "id": self.id, "state": status.get("state"), "message": status.get("message", ""),
            "model": config.get("model", {}).get("name"), "dataset": config.get("data", {}).get("dataset"),
            "step": status.get("step", 0), "total_steps": status.get("total_steps"),
            "train_error": last["train"].get("error"), "test_error": last["test"].get("error"),
            "images_per_sec": status.get("images_per_sec"),
        }


def list_runs(root: str | Path = DEFAULT_RUNS_DIR) -> list[Run]:
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [Run(path) for path in root.iterdir() if (path / "config.json").exists()]
    return sorted(runs, key=lambda run: run.path.name)


def mark_interrupted(root: str | Path, live_run_dirs: set[str] = frozenset()) -> list[Run]:
    """Runs left queued, running or paused by a process that is gone are marked interrupted.

    A run owned by another live process (a CLI training in another terminal) is left alone; one
    owned by this process but not in ``live_run_dirs`` lost its job (a restarted server).
    """
    marked = []
    for run in list_runs(root):
        status = run.status()
        if status.get("state") not in ACTIVE_STATES or str(run.path) in live_run_dirs:
            continue
        pid = status.get("pid")
        if pid != os.getpid() and pid_alive(pid):
            continue
        run.set_status("interrupted", f"stopped at step {status.get('step', 0)} when its process ended; resumable"
                       if run.has_checkpoint() else "stopped when its process ended, before a checkpoint")
        marked.append(run)
    return marked
