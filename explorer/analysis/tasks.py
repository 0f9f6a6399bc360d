"""The lesion study and the loss landscape as jobs: run off the page, through the execution backends.

A page asks the ``TaskBoard`` for an analysis of a run with some settings. The board answers from
the run's cache when that analysis was made before on the same saved weights; otherwise it starts
it (one per run and settings, however many pages ask) where training runs: a worker process by
default, a Ray task on a cluster. The page polls ``Task.progress`` and draws the result when done.

Results are cached in the run folder, ``analysis/<kind>-<key>.json``, keyed on the settings and
the saved model's size and time: a run that saves newer weights gets a fresh analysis. On a
backend without the run folder (Ray), the run's config, status and weights travel with the task
and are unpacked into a temporary folder there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from explorer.i18n import Translate, untranslated
from explorer.train.execution import TaskSpec
from explorer.train.worker import import_target

KINDS = {  # kind: the function that computes it (module:function, imported in the worker)
    "lesion": "explorer.analysis.lesion:lesion_study",
    "landscape": "explorer.analysis.landscape:loss_landscape",
    "evaluate": "explorer.analysis.evaluate:evaluate_run",
    "responses": "explorer.analysis.evaluate:layer_responses",
}
RUN_FILES = ("config.json", "status.json", "data.json", "model.pt")  # what an analysis reads of a run
PROGRESS_EVERY_SECONDS = 0.2


def cache_path(kind: str, run_dir: str | Path, options: dict) -> Path | None:
    """Where ``kind`` with ``options`` on the run's current weights is kept; None without saved weights."""
    model = Path(run_dir) / "model.pt"
    try:
        stat = model.stat()
    except OSError:
        return None
    text = json.dumps({"kind": kind, "options": options, "weights": [stat.st_size, stat.st_mtime_ns]}, sort_keys=True)
    return Path(run_dir) / "analysis" / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def run_analysis(kind: str, run_dir: str, options: dict, progress_path: str | None = None,
                 files: dict[str, bytes] | None = None) -> dict:
    """Compute ``kind`` of ``run_dir`` (in a worker). ``files``: the run folder's files, when the
    worker cannot read the folder; ``progress_path``: a file that gets {"done", "total"}."""
    function = import_target(KINDS[kind])
    progress = _ProgressFile(progress_path) if progress_path else None
    if files is None:
        return function(run_dir, progress=progress, **options)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / Path(run_dir).name  # the same name: the same label on the page
        copy.mkdir()
        for file_name, content in files.items():
            (copy / file_name).write_bytes(content)
        result = function(str(copy), progress=progress, **options)
    result["run_dir"] = run_dir
    return result


class _ProgressFile:
    def __init__(self, path: str):
        self.path, self.last = Path(path), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = now
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            partial.write_text(json.dumps({"done": done, "total": total}))
            partial.replace(self.path)
        except OSError:  # a full disk: the page shows no progress, the analysis goes on
            partial.unlink(missing_ok=True)


def _keep(path: Path, result: dict) -> None:
    """Cache ``result`` at ``path``; on a full disk it is shown uncached and no partial file is left."""
    partial = path.with_suffix(".tmp")
    try:
        partial.write_text(json.dumps(result))
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)


@dataclass
class Task:
    kind: str
    run_dir: str
    options: dict
    path: Path  # where the result is cached
    state: str = "queued"  # queued, running, done, failed
    result: dict | None = None
    message: str = ""
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def progress(self) -> tuple[int, int] | None:
        """(done, total) evaluations, while it runs on a backend that reports them."""
        try:
            numbers = json.loads(self.path.with_suffix(".progress").read_text())
            return int(numbers["done"]), int(numbers["total"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


def shown_message(message: str, _: Translate = untranslated) -> str:
    """A failed task's ``message`` (English, as the board and the analyses give it) in the page's language
    ``_``: the board's own reasons, and the landscape's refusal of a long computation. Any other
    refusal (an analysis' ValueError, a worker that died) is shown as it is."""
    if message == "it ended without a result":
        return _("it ended without a result")
    if match := re.fullmatch(r"(.+) has saved no model yet \(model\.pt\): train it first, or wait for its first "
                             r"checkpoint", message):
        return _("{run} has saved no model yet (model.pt): train it first, or wait for its first checkpoint").format(
            run=match[1])
    if match := re.fullmatch(r"(.+) was deleted", message):
        return _("{run} was deleted").format(run=match[1])
    if match := re.fullmatch(r"would take about ([\d,]+) s \(([\d,]+) evaluations of ([\d,]+) images at ([\d.]+) s "
                             r"each; the limit is (\S+) s\); lower the points or the images", message):
        return _("would take about {estimate} s ({evaluations} evaluations of {images} images at {one} s each; the "
                 "limit is {limit} s); lower the points or the images").format(
            estimate=match[1], evaluations=match[2], images=match[3], one=match[4], limit=match[5])
    if message.startswith("could not run: "):
        return _("could not run: {error}").format(error=message.removeprefix("could not run: "))
    return message


class TaskBoard:
    """Analyses of runs, computed once each through ``backend``, at most ``max_concurrent`` at a time."""

    def __init__(self, backend, max_concurrent: int = 2):
        self.backend = backend
        self.max_concurrent = max_concurrent
        self._slots = threading.Semaphore(max_concurrent)
        self._tasks: dict[Path, Task] = {}
        self._lock = threading.Lock()

    def has_result(self, kind: str, run_dir: str | Path, options: dict) -> bool:
        """Whether ``request`` would answer at once with a result (without reading it)."""
        path = cache_path(kind, run_dir, options)
        if path is None:
            return False
        task = self._tasks.get(path)
        return task.state == "done" if task is not None else path.exists()

    def cached(self, kind: str, run_dir: str | Path, options: dict) -> dict | None:
        path = cache_path(kind, run_dir, options)
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def request(self, kind: str, run_dir: str | Path, options: dict, retry: bool = False) -> Task:
        """The analysis of ``run_dir`` with ``options``: done from the cache, already under way, or started now.

        One that failed stays failed (a page asks on every rerun) unless ``retry``, which a click
        asks for. A run without saved weights gets a failed task with the reason, and no worker."""
        if kind not in KINDS:
            raise ValueError(f"unknown analysis {kind!r}; valid: {', '.join(KINDS)}")
        run_dir = str(run_dir)
        path = cache_path(kind, run_dir, options)
        if path is None:
            task = Task(kind, run_dir, options, Path(run_dir) / "analysis" / f"{kind}-none.json", state="failed",
                        message=f"{Path(run_dir).name} has saved no model yet (model.pt): train it first, or wait for "
                                "its first checkpoint")
            task.ended.set()
            return task
        with self._lock:
            task = self._tasks.get(path)
            if task is not None and (task.state != "failed" or not retry):
                return task
            result = self.cached(kind, run_dir, options)
            task = Task(kind, run_dir, options, path, state="done" if result else "queued", result=result)
            if result:
                task.ended.set()
            self._tasks[path] = task
        if not result:
            threading.Thread(target=self._run, args=(task,), name=f"{kind}-{Path(run_dir).name}", daemon=True).start()
        return task

    def _run(self, task: Task) -> None:
        with self._slots:
            task.state = "running"
            progress = task.path.with_suffix(".progress")
            try:
                result, why = self._compute(task, progress)
                if result is not None:
                    _keep(task.path, result)
            except Exception as error:  # noqa: BLE001 - the run deleted meanwhile, a backend that cannot start
                result, why = None, f"could not run: {error}"
            if result is not None:
                task.result, task.state = result, "done"
            else:
                task.message, task.state = why or "it ended without a result", "failed"
            progress.unlink(missing_ok=True)
            task.ended.set()

    def _compute(self, task: Task, progress: Path) -> tuple[dict | None, str]:
        run_dir = Path(task.run_dir)
        if not (run_dir / "config.json").exists():
            return None, f"{run_dir.name} was deleted"
        task.path.parent.mkdir(exist_ok=True)
        kwargs = {"kind": task.kind, "run_dir": task.run_dir, "options": task.options}
        if getattr(self.backend, "shares_files", True):
            kwargs["progress_path"] = str(progress)
        else:
            kwargs["files"] = {name: (run_dir / name).read_bytes() for name in RUN_FILES if (run_dir / name).exists()}
        spec = TaskSpec("explorer.analysis.tasks:run_analysis", kwargs,
                        threads=self.backend.cpu_threads(self.max_concurrent),
                        device=str(task.options.get("device", "cpu")))
        handle = self.backend.start_task(spec)
        handle.wait()
        return handle.outcome()
