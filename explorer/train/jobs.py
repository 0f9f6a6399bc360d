"""Training jobs: one manager serves the app, the CLI and a notebook, over an execution backend.

The manager decides what runs when; a backend (explorer/train/execution.py) runs it: worker
processes on this machine by default, threads, or Ray actors on a cluster. At most
``max_concurrent`` runs train at once and the rest wait, each knowing its place and why.

Runs belong to whoever started them: ``owner`` is a browser session's key, or None for a shared
run (started from the CLI, a notebook or by the instructor). ``by`` names who asks to pause, stop
or resume: None has every right (the CLI, the instructor); a session may control only its own
runs. The queue is fair: when a slot frees, the waiting run whose owner has the fewest runs
training goes first, and a session may train at most ``per_owner`` runs at once, so one session
cannot take every slot. Everything a job produces goes to its run folder, so a page that polls the
folder sees the same thing after a rerun, a reload or a server restart.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from explorer.data.base import CIFAR10
from explorer.data.cifar10 import check_obtainable
from explorer.i18n import Translate, untranslated
from explorer.train.config import RunConfig, validate
from explorer.train.execution import Backend, Handle, JobSpec, LocalBackend, OnThisMachine, ThreadBackend
from explorer.train.store import DEFAULT_RUNS_DIR, Run, disk_full_message, free_bytes, is_disk_full, mark_interrupted
from explorer.train.trainer import Control, TrainResult, check_config_fits

BACKENDS = ("local", "thread", "ray")
BACKEND_ENV = "RESNET_EXPLORER_BACKEND"  # the app's backend; the CLI's --backend overrides it


def resolve_backend(name: str | None = None, **options) -> Backend:
    """The backend called ``name`` (default: $RESNET_EXPLORER_BACKEND, else local)."""
    name = (name or os.environ.get(BACKEND_ENV) or "local").strip().lower()
    if name == "local":
        return LocalBackend()
    if name == "thread":
        return ThreadBackend()
    if name == "ray":
        from explorer.train.ray_backend import RayBackend  # Ray is optional: imported only when chosen

        return RayBackend(**options)
    raise ValueError(f"unknown execution backend {name!r}; valid: {', '.join(BACKENDS)}")


# What a run writes, in bytes per parameter: model.pt (4), checkpoint.pt with the SGD momentum (8), and
# a checkpoint's temporary copy while it replaces the last one (8); and its records and folder besides.
BYTES_PER_PARAMETER = 20
RECORDS_BYTES = 2 << 20


def space_needed(configs: list[RunConfig]) -> int:
    """About the most these runs' folders will hold at once, from their models' sizes."""
    from explorer.data.base import BUILT_IN_IMAGE_CLASSES
    from explorer.models.cost import profile_named
    from explorer.train.trainer import model_options

    total = 0
    for config in configs:
        options = model_options(config, BUILT_IN_IMAGE_CLASSES, config.data.image_size)
        total += BYTES_PER_PARAMETER * profile_named(config.model.name, **options).params + RECORDS_BYTES
    return total


def check_space(runs_dir: str | Path, configs: list[RunConfig], owner: str | None = None,
                _: Translate = untranslated) -> None:
    """Refuse, before any folder is made, runs the disk holding ``runs_dir`` has no room for, and a
    student's runs that would take their session past its quota (explorer/train/storage.py).
    ``_``: the page's translation of the refusal."""
    from explorer.train.storage import check_quota

    free = free_bytes(runs_dir)
    needed = space_needed(configs)
    check_quota(runs_dir, owner, needed, _=_)
    if free is not None and free < needed:
        numbers = dict(needed=needed / 2**20, folder=Path(runs_dir).absolute(), free=free / 2**20)
        if len(configs) == 1:
            raise ValueError(_("not enough disk space: this run needs about {needed:,.1f} MB (model, checkpoint and "
                               "records) and the disk holding {folder} has {free:,.1f} MB free; delete old runs "
                               "(the Runs page) or free space").format(**numbers))
        raise ValueError(_("not enough disk space: these {count} runs need about {needed:,.1f} MB (model, checkpoint "
                           "and records) and the disk holding {folder} has {free:,.1f} MB free; delete old runs "
                           "(the Runs page) or free space").format(count=len(configs), **numbers))


def check_config(config: RunConfig, backend: Backend | None = None) -> None:
    """Refuse bad settings, a device that ``backend`` (default: this machine) lacks, a model and batch
    that cannot fit, and CIFAR-10 that is neither here nor downloadable (offline), before anything is
    created. On a backend whose runs train elsewhere (Ray) the trainer checks the fit where it lands."""
    validate(config)
    backend = backend or OnThisMachine()
    backend.training_device(config.device)
    if backend.checks_fit_here:
        check_config_fits(config)
    if config.data.dataset == CIFAR10:
        check_obtainable(config.data.data_dir)


class NotYours(PermissionError):
    """A session asked to control a run that another session started."""


@dataclass
class Job:
    run: Run
    config: RunConfig
    control: Control
    owner: str | None = None  # the session that started it; None: shared
    checked: bool = True  # validated and fit-checked at submission (a resumed run is checked by the trainer)
    group_size: int = 1  # runs submitted with it; they share the cores (see _pick)
    order: int = 0  # submission order, for the queue
    handle: Handle | None = None
    result: TrainResult | None = None
    started: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def run_dir(self) -> str:
        return str(self.run.path)

    @property
    def finished(self) -> bool:
        return self.result is not None

    def status(self) -> dict:
        return self.run.status()


class JobManager:
    def __init__(self, runs_dir: str | Path = DEFAULT_RUNS_DIR, max_concurrent: int = 1,
                 backend: Backend | str | None = None, per_owner: int | None = None):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_concurrent = max_concurrent
        self.per_owner = per_owner or max_concurrent
        self.backend = backend if backend is not None and not isinstance(backend, str) else resolve_backend(backend)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._orders = itertools.count()
        # Runs left active by a previous server or a killed process cannot still be training here.
        mark_interrupted(self.runs_dir, live_run_dirs=set())
        # At exit, stop the jobs (each saves a resumable checkpoint) rather than kill them inside torch.
        atexit.register(self.shutdown)

    # --- submitting ----------------------------------------------------------------------------
    def submit(self, config: RunConfig, label: str | None = None, run_dir: str | Path | None = None,
               group: str | None = None, owner: str | None = None, _: Translate = untranslated) -> Job:
        """Check ``config``, create its run folder and queue it. Bad settings raise ValueError here.

        ``group`` names runs started together (a preset), so a page can show them together again.
        ``_``: the page's translation of a refusal for want of space.
        """
        check_config(config, self.backend)
        check_space(Path(run_dir).parent if run_dir else self.runs_dir, [config], owner, _=_)
        job = self._create(config, label, run_dir, group, owner)
        self._schedule()
        return job

    def submit_group(self, configs: list[RunConfig], group: str, owner: str | None = None,
                     _: Translate = untranslated) -> list[Job]:
        """Submit several runs as one comparison; all are checked before any is created or started.
        ``_``: the page's translation of a refusal for want of space."""
        for config in configs:
            check_config(config, self.backend)
        check_space(self.runs_dir, configs, owner, _=_)
        jobs = [self._create(config, group=group, owner=owner, group_size=len(configs)) for config in configs]
        self._schedule()
        return jobs

    def _create(self, config: RunConfig, label: str | None = None, run_dir: str | Path | None = None,
                group: str | None = None, owner: str | None = None, group_size: int = 1) -> Job:
        label = label or f"{config.model.name}-{config.data.dataset.split(':')[0]}"
        run = Run.create(run_dir, config.to_json()) if run_dir else Run.new_in(self.runs_dir, config.to_json(), label)
        run.set_status("queued", "waiting to start", owner=owner, group_size=group_size,
                       **({"group": group} if group else {}))
        return self._add(Job(run=run, config=config, control=self.backend.new_control(), owner=owner,
                             group_size=group_size))

    def resume(self, run_dir: str | Path, by: str | None = None, _: Translate = untranslated) -> Job:
        """Continue a paused job, or a stopped, interrupted or failed run from its last checkpoint.
        ``_``: the page's translation of a refusal."""
        job = self.get(run_dir)
        if job and not job.finished:
            self._check_rights(job.run, by, _)
            job.control.resume()
            return job
        run = Run(run_dir)
        if not run.exists():
            raise ValueError(_("{folder} is not a run folder (it has no config.json)").format(folder=run_dir))
        self._check_rights(run, by, _)
        status = run.status()
        if status.get("state") not in ("stopped", "interrupted", "failed"):
            raise ValueError(_("a {state} run cannot be resumed; only stopped, interrupted or failed ones").format(
                state=status.get("state")))
        config = RunConfig.from_json(run.config())
        run.set_status("queued", "waiting to resume")
        job = self._add(Job(run=run, config=config, control=self.backend.new_control(), owner=status.get("owner"),
                            checked=False, group_size=int(status.get("group_size") or 1)))
        self._schedule()
        return job

    def _add(self, job: Job) -> Job:
        with self._lock:
            job.order = next(self._orders)
            self._jobs[job.run_dir] = job
        return job

    # --- scheduling ----------------------------------------------------------------------------
    def _schedule(self) -> None:
        """Start waiting jobs while slots are free, fairest first."""
        while (picked := self._pick()) is not None:
            job, spec = picked
            try:
                # Outside the lock: the first start of a worker can take seconds (the fork server
                # imports torch), and pages must not wait for it to read a queue place.
                job.handle = self.backend.start(spec, job.control)
            except Exception as error:  # noqa: BLE001 - a backend that cannot start leaves a message, not a dead queue
                message = f"could not start: {error}"
                job.run.set_status("failed", message)
                self._end(job, TrainResult(job.run_dir, "failed", message, 0, 0, None, None, None))
                continue
            threading.Thread(target=self._watch, args=(job,), name=f"watch-{job.run.id}", daemon=True).start()

    def _pick(self) -> tuple[Job, JobSpec] | None:
        """The next job to start, marked started, and its spec; None while no slot is free or no one may."""
        with self._lock:
            running = [job for job in self._jobs.values() if job.started and not job.ended.is_set()]
            waiting = [job for job in self._jobs.values() if not job.started]
            if len(running) >= self.max_concurrent or not waiting:
                return None
            job = self._next(running, waiting)
            if job is None:
                return None
            job.started = True
            # A run's nets share the cores: a preset's four get one thread each on 2 cores. The count
            # depends on its own group only, not on what else is queued, because torch's CPU
            # results depend on it: the same seed with 1 thread and with 2 gives different curves
            # (bitwise the same with the same count, measured). So a seed gives the same curves
            # however busy the server is, and after a resume.
            concurrent = min(self.max_concurrent, job.group_size)
            return job, JobSpec(job.config.to_json(), job.run_dir, job.checked and self.backend.checks_fit_here,
                                self.backend.cpu_threads(concurrent))

    def _next(self, running: list[Job], waiting: list[Job]) -> Job | None:
        training = {}
        for job in running:
            training[job.owner] = training.get(job.owner, 0) + 1
        # Shared runs (owner None: the CLI, the instructor) are not held to the per-session share.
        allowed = [job for job in waiting if job.owner is None or training.get(job.owner, 0) < self.per_owner]
        if not allowed:
            return None
        # The instructor's (and the CLI's) shared runs first: a demo on the projector never waits behind
        # the class's queue; then the session with the fewest runs training, then the order of asking.
        return min(allowed, key=lambda job: (job.owner is not None, training.get(job.owner, 0), job.order))

    def _watch(self, job: Job) -> None:
        result = None
        try:
            job.handle.wait()
            result, reason = job.handle.outcome()
            if result is None:
                result = self._worker_died(job, reason)
        except Exception as error:  # noqa: BLE001 - a job always ends: a CLI or a page waits for it
            message = disk_full_message(job.run.path / "status.json") if is_disk_full(error) else (
                f"{type(error).__name__}: {error}")
            result = TrainResult(job.run_dir, "failed", message, 0, 0, None, None, None)
        finally:
            self._end(job, result)
            self._schedule()

    def _worker_died(self, job: Job, reason: str) -> TrainResult:
        """The worker ended without a result: the run is left interrupted and resumable."""
        status = job.run.status()
        step, checkpoint = status.get("step", 0), status.get("checkpoint_step")
        resumes = (f"resumes from the checkpoint at step {checkpoint}" if checkpoint is not None
                   else "restarts from step 0 (no checkpoint yet)")
        message = f"interrupted at step {step}: {reason}; {resumes}"
        try:
            job.run.set_status("interrupted", message)
        except OSError as error:  # a full disk: shown as interrupted anyway once the worker is gone
            if not is_disk_full(error):
                raise
        return TrainResult(job.run_dir, "interrupted", message, step, status.get("total_steps") or 0, None, None,
                           None)

    def _end(self, job: Job, result: TrainResult) -> None:
        job.result = result
        job.ended.set()

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
            waiting = sorted((job for job in self._jobs.values() if not job.started),
                             key=lambda job: (job.owner is not None, job.order))  # shared runs first, as _next
        keys = [job.run_dir for job in waiting]
        key = str(Path(run_dir))
        return keys.index(key) + 1 if key in keys else None

    def waiting_reason(self, run_dir: str | Path, _: Translate = untranslated) -> str | None:
        """Why a queued run has not started yet, in one sentence (``_``: the page's translation); None
        when it is not waiting."""
        job = self.get(run_dir)
        place = self.queue_position(run_dir)
        if job is None or place is None:
            return None
        running = [other for other in self.jobs() if other.started and not other.ended.is_set()]
        mine = sum(other.owner == job.owner for other in running)
        if job.owner is not None and mine >= self.per_owner:
            if self.per_owner > 1:
                return _("waiting: a session trains at most {most} runs at once, and {mine} of yours are "
                         "training").format(most=self.per_owner, mine=mine)
            return _("waiting: a session trains at most {most} run at once, and {mine} of yours are "
                     "training").format(most=self.per_owner, mine=mine)
        return _("waiting for a free slot: {running} of {most} are training; number {place} in line").format(
            running=len(running), most=self.max_concurrent, place=place)

    def can_control(self, run: Run, by: str | None) -> bool:
        return by is None or run.status().get("owner") == by

    def _check_rights(self, run: Run, by: str | None, _: Translate = untranslated) -> None:
        if not self.can_control(run, by):
            raise NotYours(_("{run} was started in another session; only that session or the instructor can "
                             "control it").format(run=run.id))

    def stop(self, run_dir: str | Path, by: str | None = None, _: Translate = untranslated) -> str:
        """Ask a job to stop; returns what happened (``_``: the page's translation), also for a job
        that already ended. The run's status keeps the code's English."""
        job = self.get(run_dir)
        if job is None:
            return _("no such job in this session; nothing to stop")
        self._check_rights(job.run, by, _)
        if job.finished:
            return _("the run had already ended ({state})").format(state=job.result.state)
        job.control.stop()
        with self._lock:
            queued, job.started = not job.started, True
        if queued:  # it never takes a slot
            job.run.set_status("stopped", "stopped before it started")
            self._end(job, TrainResult(job.run_dir, "stopped", "stopped before it started", 0, 0, None, None, None))
            return _("stopped before it started")
        return _("stopping")

    def pause(self, run_dir: str | Path, by: str | None = None, _: Translate = untranslated) -> str:
        """Ask a job to pause; returns what happened (``_``: the page's translation)."""
        job = self.get(run_dir)
        if job is None or job.finished:
            return _("the run is not training; nothing to pause")
        self._check_rights(job.run, by, _)
        job.control.pause()
        return _("pausing")

    def wait(self, run_dir: str | Path, timeout: float | None = None) -> TrainResult | None:
        job = self.get(run_dir)
        if job is None:
            return None
        job.ended.wait(timeout)
        return job.result

    def shutdown(self, timeout: float = 30) -> None:
        """Stop every job and wait for it (each saves a resumable checkpoint)."""
        for job in self.active():
            self.stop(job.run_dir)
        for job in self.jobs():
            if job.handle is not None:
                job.handle.wait(timeout)
        self.backend.shutdown()
