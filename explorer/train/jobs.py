"""Background training jobs: one manager serves the app, the CLI and a notebook.

Jobs run in worker threads that never call Streamlit; at most ``max_concurrent`` train at once and
the rest wait, queued, knowing their place. Everything a job produces goes to its run folder, so a
page that polls the folder sees the same thing after a rerun, a reload or a
server restart.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field
from pathlib import Path

from explorer.train.config import RunConfig, validate
from explorer.train.store import DEFAULT_RUNS_DIR, Run, mark_interrupted
from explorer.train.trainer import Control, TrainResult, check_config_fits, train


def check_config(config: RunConfig) -> None:
    """Refuse bad settings, and a model and batch that cannot fit, before anything is created."""
    validate(config)
    check_config_fits(config)


@dataclass
class Job:
    run: Run
    config: RunConfig
    control: Control = field(default_factory=Control)
    thread: threading.Thread | None = None
    result: TrainResult | None = None
    started: bool = False
    checked: bool = True  # validated and fit-checked at submission (a resumed run is checked by the trainer)

    @property
    def run_dir(self) -> str:
        return str(self.run.path)

    @property
    def finished(self) -> bool:
        return self.result is not None

    def status(self) -> dict:
        return self.run.status()


class JobManager:
    def __init__(self, runs_dir: str | Path = DEFAULT_RUNS_DIR, max_concurrent: int = 1):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_concurrent)
        self._order: list[str] = []  # submission order, for queue places
        # Runs left active by a previous server or a killed process cannot still be training here.
        mark_interrupted(self.runs_dir, live_run_dirs=set())
        # At exit, stop the jobs (each saves a resumable checkpoint) rather than kill their threads
        # inside torch, which aborts the process.
        atexit.register(self.shutdown)

    # --- submitting ----------------------------------------------------------------------------
    def submit(self, config: RunConfig, label: str | None = None, run_dir: str | Path | None = None,
               group: str | None = None) -> Job:
        """Check ``config``, create its run folder and queue it. Bad settings raise ValueError here.

        ``group`` names runs started together (a preset), so a page can show them together again.
        """
        check_config(config)
        return self._create(config, label, run_dir, group)

    def submit_group(self, configs: list[RunConfig], group: str) -> list[Job]:
        """Submit several runs as one comparison; all are checked before any is created."""
        for config in configs:
            check_config(config)
        return [self._create(config, group=group) for config in configs]

    def _create(self, config: RunConfig, label: str | None = None, run_dir: str | Path | None = None,
                group: str | None = None) -> Job:
        label = label or f"{config.model.name}-{config.data.dataset.split(':')[0]}"
        run = Run.create(run_dir, config.to_json()) if run_dir else Run.new_in(self.runs_dir, config.to_json(), label)
        if group:
            run.set_status("queued", "waiting to start", group=group)
        return self._start(Job(run=run, config=config))

    def resume(self, run_dir: str | Path) -> Job:
        """Continue a stopped or interrupted run from its last checkpoint (or a paused job)."""
        key = str(Path(run_dir))
        with self._lock:
            job = self._jobs.get(key)
        if job and not job.finished:
            job.control.resume()
            return job
        run = Run(run_dir)
        if not run.exists():
            raise ValueError(f"{run_dir} is not a run folder (it has no config.json)")
        state = run.status().get("state")
        if state not in ("stopped", "interrupted", "failed"):
            raise ValueError(f"a {state} run cannot be resumed; only stopped, interrupted or failed ones")
        config = RunConfig.from_json(run.config())
        run.set_status("queued", "waiting to resume")
        return self._start(Job(run=run, config=config, checked=False))

    def _start(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.run_dir] = job
            self._order.append(job.run_dir)
        job.thread = threading.Thread(target=self._work, args=(job,), name=f"train-{job.run.id}", daemon=True)
        job.thread.start()
        return job

    def _work(self, job: Job) -> None:
        self._slots.acquire()
        try:
            with self._lock:
                job.started = True
            if job.control.stop_requested:
                job.run.set_status("stopped", "stopped before it started")
                job.result = TrainResult(job.run_dir, "stopped", "stopped before it started", 0, 0, None, None, None)
                return
            job.result = train(job.config, job.run, job.control, checked=job.checked)
        finally:
            with self._lock:
                if job.run_dir in self._order:
                    self._order.remove(job.run_dir)
            self._slots.release()

    # --- controlling ---------------------------------------------------------------------------
    def get(self, run_dir: str | Path) -> Job | None:
        with self._lock:
            return self._jobs.get(str(Path(run_dir)))

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def active(self) -> list[Job]:
        return [job for job in self.jobs() if not job.finished]

    def queue_position(self, run_dir: str | Path) -> int | None:
        """1 for the next job to start, None when the job is running or finished."""
        with self._lock:
            waiting = [key for key in self._order if not self._jobs[key].started]
        key = str(Path(run_dir))
        return waiting.index(key) + 1 if key in waiting else None

    def stop(self, run_dir: str | Path) -> str:
        """Ask a job to stop; returns what happened, also for a job that already ended."""
        job = self.get(run_dir)
        if job is None:
            return "no such job in this session; nothing to stop"
        if job.finished:
            return f"the run had already ended ({job.result.state})"
        job.control.stop()
        return "stopping"

    def pause(self, run_dir: str | Path) -> str:
        job = self.get(run_dir)
        if job is None or job.finished:
            return "the run is not training; nothing to pause"
        job.control.pause()
        return "pausing"

    def wait(self, run_dir: str | Path, timeout: float | None = None) -> TrainResult | None:
        job = self.get(run_dir)
        if job is None or job.thread is None:
            return None
        job.thread.join(timeout)
        return job.result

    def shutdown(self, timeout: float = 30) -> None:
        """Stop every job and wait for it (they save a resumable checkpoint)."""
        for job in self.active():
            job.control.stop()
        for job in self.jobs():
            if job.thread:
                job.thread.join(timeout)
