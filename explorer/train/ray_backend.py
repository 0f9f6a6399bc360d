"""The Ray backend: each run trains in a Ray actor on a cluster; its records come back to the app.

What runs where:

    the app's process (the driver)     the job manager, the run folders, and per run one thread, the
                                       pump, that writes what the worker sends into the run folder
    a Ray worker (any node)            the trainer, with a ``RemoteRun`` in place of the run folder

No shared file system is assumed, and the app may reach the cluster as a Ray client (``ray://``),
so the worker never writes a file: ``RemoteRun`` queues each write the trainer makes (a metric, a
probe, the status, the model, a checkpoint as CPU tensors) in the worker, and the pump fetches the
queue about twice a second in one call, ``exchange``, which also carries the manager's pause and
stop flags to the worker. A checkpoint waits until the app has written it (so a lost worker loses
at most the steps since its last checkpoint, and a slow link holds the trainer back rather than
piling checkpoints up); every other write goes on at once. A resumed run gets its checkpoint from
the app's folder with the job, so it resumes on any node.

A worker that dies, is killed or loses its node ends its handle with no result and the reason; the
manager marks the run interrupted and resumable from the last checkpoint the app holds. Nothing is
retried by Ray (``max_restarts=0``, ``max_task_retries=0``): a retry would write records twice;
the user resumes instead.

The cluster is ``address`` (``ray://head:10001`` from outside the cluster, ``auto`` on one of its
nodes), else Ray's own ``RAY_ADDRESS``, else a Ray started on this machine; a notebook or test that
has already called ``ray.init`` is used as it is. Ray is optional: requirements-cluster.txt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import torch

import explorer
from explorer.train.config import RunConfig
from explorer.train.execution import JobSpec, TaskSpec
from explorer.train.store import Run
from explorer.train.trainer import Control, TrainResult, train
from explorer.train.worker import call_target

INSTALL = "pip install -r requirements-cluster.txt -c constraints.txt"
PROBE_SECONDS = 3.0  # how long an address may take to answer before the backend refuses it
EXCHANGE_SECONDS = 0.5  # how often the app fetches a worker's records and sends it the controls
# Where a Ray started on this machine listens: loopback. Not 127.0.0.1, which Ray (2.60,
# services.resolve_ip_for_localhost) replaces by the machine's network address on purpose; any
# 127.x.y.z is loopback on Linux, and Ray leaves 127.0.0.2 as it is.
LOOPBACK = "127.0.0.2"
ANSWER_SECONDS = 120.0  # a worker that answers no exchange for this long is given up as lost
CLIENT_PORT, GCS_PORT = 10001, 6379  # Ray's default ports for ray:// and for a cluster's head
# The Run methods a worker's RemoteRun forwards to the app, which the app carries out on the run folder.
WRITES = frozenset({"set_status", "update_status", "save_data_info", "rewind_to", "append_metric", "append_probe",
                    "save_model", "save_checkpoint", "write_error_log"})


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError(f"the ray backend needs Ray, which is not installed here: {INSTALL}") from None
    return ray


class RayBackend:
    """Runs as Ray actors on a cluster (``address``), records kept in the app's run store."""

    name = "ray"

    def __init__(self, address: str | None = None):
        ray = _ray()
        self._owns_ray = False
        source = "--ray-address" if address else "RAY_ADDRESS"
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address and address not in ("auto", "local"):
            _check_reachable(address, source)
        if not ray.is_initialized():
            try:
                # The cluster's workers import explorer from this copy, so they train the code the app shows.
                ray.init(address=address, log_to_driver=False,
                         runtime_env={"py_modules": [os.path.dirname(explorer.__file__)], "excludes": ["__pycache__"]},
                         # A Ray started here stays on loopback: a class's server reaches nothing else.
                         **({"include_dashboard": False, "_node_ip_address": LOOPBACK}
                            if address in (None, "local") else {}))
            except Exception as error:  # noqa: BLE001 - Ray raises many kinds here; the user needs one sentence
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                # Since Ray 2.59 a cluster may require its token; a client without it is refused in silence.
                token = ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                         "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token in "
                         "RAY_AUTH_TOKEN here")
                raise ValueError(f"could not connect to {where}: {_first_line(error)}; check that the cluster is "
                                 f"up and runs Ray {ray.__version__}{token if address else ''}") from None
            self._owns_ray = True
        self._worker_class = ray.remote(_Worker)

    def new_control(self) -> Control:
        # Plain flags in the app's process: the job's pump carries them to the worker.
        return Control()

    def start(self, spec: JobSpec, control: Control) -> RayHandle:
        resources = self._resources(RunConfig.from_json(spec.config).device, spec.threads)
        spec = dataclasses.replace(spec, threads=resources["num_cpus"])  # torch's threads: what Ray reserved
        return RayHandle(self._worker_class, spec, control, resources)

    shares_files = False  # its workers may be on other machines: a task takes the run's files with it

    def start_task(self, spec: TaskSpec) -> RayTaskHandle:
        resources = self._resources(spec.device, spec.threads)
        spec = dataclasses.replace(spec, threads=resources["num_cpus"])
        remote = _ray().remote(max_retries=0, **resources)(_run_task)  # a retry would only fail again
        return RayTaskHandle(remote.remote(spec))

    def cpu_threads(self, concurrent: int) -> int:
        """The cluster's CPUs divided among the runs that train at once, at most a whole node's."""
        cpus = [node.get("CPU", 0) for node in _nodes()] or [1]
        return int(max(1, min(max(cpus), sum(cpus) // max(1, concurrent))))

    def shutdown(self) -> None:
        _forget_nodes()
        if self._owns_ray:
            _ray().shutdown()
            self._owns_ray = False

    # The nodes' memory is not this machine's: the trainer checks that a model fits where it lands.
    checks_fit_here = False

    def training_device(self, choice: str) -> str:
        """Where runs train is the cluster, not this machine: "auto" and "cuda" take a GPU when a node has one."""
        choice = str(choice).strip().lower()
        gpus = sum(node.get("GPU", 0) for node in _nodes())
        if choice == "cpu" or (choice == "auto" and not gpus):
            return "cpu"
        if choice in ("auto", "cuda") and gpus:
            return "cuda"
        if choice == "cuda":
            raise ValueError("CUDA was asked for but no node of the Ray cluster has a GPU; train on the CPU "
                             "(device auto or cpu) or add a GPU node")
        raise ValueError(f"device {choice!r} is not one a Ray cluster offers; valid there: auto, cpu, cuda")

    def describe_where(self, device_type: str) -> str:
        try:
            nodes = _nodes()
        except ValueError:
            return "the Ray cluster (it did not answer just now)"
        cpus, gpus = sum(node.get("CPU", 0) for node in nodes), sum(node.get("GPU", 0) for node in nodes)
        return (f"the Ray cluster's {'GPUs' if device_type == 'cuda' else 'CPUs'} ({_count(len(nodes), 'node')}: "
                f"{_count(cpus, 'CPU')}, {_count(gpus, 'GPU')})")

    def _resources(self, device: str, threads: int) -> dict:
        """Ray's resources for a run, refused at once when no node of the cluster has them."""
        nodes = _nodes()
        gpus = 1 if device == "cuda" or (device == "auto" and any(node.get("GPU", 0) for node in nodes)) else 0
        if gpus:  # the threads were shared out over every node's CPUs; a GPU run needs a GPU node's
            threads = max(1, min(threads, int(max((node.get("CPU", 0) for node in nodes if node.get("GPU", 0)),
                                                  default=threads))))
        if not any(node.get("CPU", 0) >= threads and node.get("GPU", 0) >= gpus for node in nodes):
            want = _count(threads, "CPU") + (" and a GPU" if gpus else "")
            raise ValueError(f"no node of the Ray cluster has {want} for this run; add such a node, or train on "
                             f"{'the CPU' if gpus else 'fewer threads'}")
        return {"num_cpus": threads, "num_gpus": gpus}


NODES_SECONDS = 2.0  # how long a look at the cluster's nodes is reused (a page asks several times a rerun)
_nodes_seen: tuple[float, list[dict]] = (-NODES_SECONDS, [])


def _nodes() -> list[dict]:
    """The resources of each live node, as seen within the last NODES_SECONDS."""
    global _nodes_seen
    seen_at, nodes = _nodes_seen
    if time.monotonic() - seen_at >= NODES_SECONDS:
        ray = _ray()  # Ray not installed: its own ValueError, with how to install it
        try:
            nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        except Exception as error:  # noqa: BLE001 - a lost client connection, a cluster gone: one sentence for the page
            raise ValueError(f"the Ray cluster did not answer ({_first_line(error)}); check that it is up") from None
        _nodes_seen = (time.monotonic(), nodes)
    return nodes


def _count(number: float, what: str) -> str:
    return f"{number:g} {what}{'' if number == 1 else 's'}"


def _forget_nodes() -> None:
    global _nodes_seen
    _nodes_seen = (-NODES_SECONDS, [])


def _check_reachable(address: str, source: str) -> None:
    """Refuse an address that nothing answers at within seconds (Ray itself retries for half a minute or more)."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port or (CLIENT_PORT if parts.scheme == "ray" else GCS_PORT)
    except ValueError:
        host = port = None
    if not host:
        raise ValueError(f"{source} {address!r} is not a Ray address; give ray://HOST:PORT or HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as error:
        raise ValueError(f"cannot reach the Ray cluster at {address} ({source}): {host}:{port} did not answer "
                         f"({error.strerror or error}); start the cluster (ray start --head), give its address, or "
                         "choose another backend") from None


# --- the app's side -----------------------------------------------------------------------------


class RayHandle:
    """One run on the cluster, followed by a thread of the app that writes its records."""

    def __init__(self, worker_class, spec: JobSpec, control: Control, resources: dict):
        self.control = control
        self.worker: dict | None = None  # the node, host and pid it trains in, once Ray has placed it
        self._spec = spec
        self._run = Run(spec.run_dir)
        self._result: TrainResult | None = None
        self._reason = ""
        self._ended = threading.Event()
        self._actor = worker_class.options(max_concurrency=2, max_restarts=0, max_task_retries=0,
                                           **resources).remote()
        wants = f"{resources['num_cpus']} CPU" + (" and a GPU" if resources["num_gpus"] else "")
        self._run.set_status("queued", f"waiting for Ray to place it ({wants})")
        threading.Thread(target=self._pump, name=f"ray-{self._run.id}", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ended.wait(timeout)

    def outcome(self) -> tuple[TrainResult | None, str]:
        return self._result, self._reason

    def kill(self) -> None:
        """For tests and benchmarks: the worker is killed, as the OOM killer or a lost node would."""
        _ray().kill(self._actor, no_restart=True)

    def _pump(self) -> None:
        ray = _ray()
        try:
            self._result = self._follow(ray)
        except ray.exceptions.RayError as error:
            self._reason = _why_lost(error, ray)
        except Exception as error:  # noqa: BLE001 - the app's side failed (its disk, say): the run cannot go on
            self._reason = f"the app could not store what its Ray worker sent ({type(error).__name__}: {error})"
        finally:
            with contextlib.suppress(Exception):  # already gone, or Ray shut down under it
                ray.kill(self._actor, no_restart=True)  # done or lost: its process and resources go back
            self._ended.set()

    def _follow(self, ray) -> TrainResult:
        placed = self._actor.ready.remote()
        while not ray.wait([placed], timeout=EXCHANGE_SECONDS)[0]:
            if self.control.stop_requested:
                message = "stopped before Ray placed it"
                self._run.set_status("stopped", message)
                return TrainResult(str(self._run.path), "stopped", message, 0, 0, None, None, None)
        self.worker = ray.get(placed)
        self._run.update_status(ray_worker=self.worker)
        training = self._actor.train.remote(self._spec, self._checkpoint(), self._flags())
        written = 0
        while True:
            reply = self._actor.exchange.remote(written, self._flags(), EXCHANGE_SECONDS)
            writes, closed = ray.get(reply, timeout=ANSWER_SECONDS)
            if self._run.exists():  # a run deleted while it trains keeps nothing
                for name, args, kwargs in writes:
                    if name not in WRITES:
                        raise ValueError(f"a worker asked for {name!r}, which is not a write of the run store")
                    getattr(self._run, name)(*args, **kwargs)
            written += len(writes)
            del writes
            if closed:
                return TrainResult(**ray.get(training, timeout=ANSWER_SECONDS))

    def _checkpoint(self):
        """The checkpoint the run resumes from, read here; a worker raises what reading it raised."""
        try:
            return self._run.load_checkpoint()
        except Exception as error:  # noqa: BLE001 - the trainer reports it as it would a local read
            return RuntimeError(f"could not read checkpoint.pt: {type(error).__name__}: {error}")

    def _flags(self) -> dict:
        exists = self._run.exists()
        return {"stop": self.control.stop_requested or not exists, "paused": self.control.paused, "exists": exists}


class RayTaskHandle:
    """One computation on the cluster; its answer comes back as the task's return value."""

    def __init__(self, reference):
        self._reference = reference
        self._answer: tuple[dict | None, str] | None = None

    def wait(self, timeout: float | None = None) -> bool:
        ready, _ = _ray().wait([self._reference], timeout=timeout)
        return bool(ready)

    def outcome(self) -> tuple[dict | None, str]:
        if self._answer is None:
            ray = _ray()
            try:
                answer = ray.get(self._reference, timeout=ANSWER_SECONDS)
                self._answer = answer.get("result"), answer.get("error", "")
            except Exception as error:  # noqa: BLE001 - a lost node or worker is a message, not a crash
                self._answer = None, _why_lost(error, ray)
        return self._answer


def _run_task(spec: TaskSpec) -> dict:
    torch.set_num_threads(spec.threads)
    return call_target(spec)


def _why_lost(error, ray) -> str:
    """Why a run's worker ended without a result, in one line."""
    if isinstance(error, ray.exceptions.RayActorError):
        # Its message: a headline, tab-indented details (class, id, pid, ip), then the cause, whose first
        # sentence says what happened ("... because its worker process has died", "... its node has died").
        if isinstance(error, ray.exceptions.ActorUnavailableError):
            # Its connection broke: a node that died before Ray noticed, or one cut off from this app.
            return "its Ray node was lost or cut off (its worker stopped answering)"
        lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("\t")]
        cause = _first_sentence(lines[-1] if lines else "no cause given")
        cause = cause[:1].lower() + cause[1:]
        if "node" in cause.lower() or error.preempted:
            return f"its Ray node was lost ({cause})"
        return f"its Ray worker died ({cause})"
    if isinstance(error, (ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError)):
        return f"its Ray node was lost ({_first_line(error)})"
    if isinstance(error, ray.exceptions.GetTimeoutError):
        return f"its Ray worker answered nothing for {ANSWER_SECONDS:.0f} s and was given up"
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.as_instanceof_cause()
        return f"its Ray worker failed ({type(cause).__name__}: {_first_line(cause)})"
    return f"Ray lost its worker ({type(error).__name__}: {_first_line(error)})"


def _first_sentence(text: str) -> str:
    return text.strip().split(". ")[0].rstrip(".")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- the worker's side --------------------------------------------------------------------------


class _Worker:
    """The Ray actor a run trains in: ``train`` in one thread, ``exchange`` answered in another."""

    def __init__(self):
        self._outbox = _Outbox()
        self._control = Control()

    def ready(self) -> dict:
        import ray

        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}

    def train(self, spec: JobSpec, checkpoint, flags: dict) -> dict:
        try:
            torch.set_num_threads(spec.threads)
            self._obey(flags)
            run = RemoteRun(spec.run_dir, self._outbox, checkpoint)
            del checkpoint
            return train(RunConfig.from_json(spec.config), run, self._control, checked=spec.checked).to_json()
        finally:
            self._outbox.close()

    def exchange(self, written: int, flags: dict, wait: float) -> tuple[list, bool]:
        """The app has written the first ``written`` writes; here are its controls. Returns the next writes."""
        self._outbox.acknowledge(written)
        self._obey(flags)
        return self._outbox.take(wait)

    def _obey(self, flags: dict) -> None:
        """Mirror the manager's controls into the control the trainer reads."""
        self._outbox.exists = flags["exists"]
        if flags["stop"]:
            self._control.stop()
        elif flags["paused"]:
            self._control.pause()
        else:
            self._control.resume()


class _Outbox:
    """The writes a worker has made and the app has not yet taken, in order."""

    def __init__(self):
        self._changed = threading.Condition()
        self._writes: list[tuple[str, tuple, dict]] = []
        self._made = 0  # writes made so far
        self._written = 0  # of them, those the app has written
        self._urgent = False  # a write waits for the app: answer the next exchange at once
        self._closed = False
        self.exists = True  # the app still has the run folder

    def put(self, name: str, *args, durable: bool = False, **kwargs) -> None:
        with self._changed:
            self._writes.append((name, args, kwargs))
            self._made += 1
            if not durable:
                return
            number, self._urgent = self._made, True
            self._changed.notify_all()
            while self._written < number:
                self._changed.wait()

    def take(self, wait: float) -> tuple[list, bool]:
        with self._changed:
            if not (self._urgent or self._closed):
                self._changed.wait_for(lambda: self._urgent or self._closed, timeout=wait)
            writes, self._writes, self._urgent = self._writes, [], False
            return writes, self._closed

    def acknowledge(self, written: int) -> None:
        with self._changed:
            self._written = written
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class RemoteRun:
    """The run folder as a worker on another machine sees it: every write goes to the app's run store.

    It offers what the trainer calls on a ``Run``; ``path`` is the folder on the app's machine,
    named in results and messages, never opened here.
    """

    def __init__(self, run_dir: str, outbox: _Outbox, checkpoint):
        self.path = Path(run_dir)
        self._outbox = outbox
        self._checkpoint = checkpoint

    @property
    def id(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return self._outbox.exists

    def load_checkpoint(self) -> dict | None:
        checkpoint, self._checkpoint = self._checkpoint, None  # read once, at the start
        if isinstance(checkpoint, Exception):
            raise checkpoint
        return checkpoint

    def set_status(self, state: str, message: str = "", **extra) -> None:
        self._outbox.put("set_status", state, message, **extra)

    def update_status(self, **extra) -> None:
        self._outbox.put("update_status", **extra)

    def save_data_info(self, info: dict) -> None:
        self._outbox.put("save_data_info", info)

    def rewind_to(self, step: int) -> None:
        self._outbox.put("rewind_to", step)

    def append_metric(self, record: dict) -> None:
        self._outbox.put("append_metric", record)

    def append_probe(self, record: dict) -> None:
        self._outbox.put("append_probe", record)

    def save_model(self, state_dict: dict) -> None:
        self._outbox.put("save_model", _on_cpu(state_dict))

    def save_checkpoint(self, checkpoint: dict) -> None:
        # Waits until the app has written it: the run resumes from here if this worker is lost.
        self._outbox.put("save_checkpoint", _on_cpu(checkpoint), durable=True)

    def write_error_log(self, text: str) -> None:
        self._outbox.put("write_error_log", text)


def _on_cpu(value):
    """Tensors moved to the CPU (an optimiser's state may be on the GPU), so the app can load them."""
    if isinstance(value, torch.Tensor):
        return value if value.device.type == "cpu" else value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value
