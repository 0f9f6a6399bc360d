"""The trainer: the paper's recipe, instrumented, durable, and controllable from another thread.

Fast where it matters: the data set lives on the device as uint8 and is augmented in whole
batches there; loss and error are summed on the device and read once per logging step; bf16
autocast where the processor computes bfloat16 natively (explorer/train/precision.py),
channels_last on CUDA and the CPU, torch.compile where it pays. Evaluation is kept out of the
training time; probes run in fp32.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from pathlib import Path
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.data import DeviceLoader, ImageDataset, PointDataset, load_dataset
from explorer.data.base import BUILT_IN_IMAGE_CLASSES, BUILT_IN_IMAGE_DATASETS
from explorer.device import describe_device, environment, resolve_device, synchronize
from explorer.models import build_model, resolve, seeded_weights
from explorer.models.cost import check_fits
from explorer.models.mode import evaluating
from explorer.threads import cpu_thread_share
from explorer.train.config import OptimConfig, RunConfig, validate
from explorer.train.precision import (autocast, choose_precision, compile_failure, compiled, reason_sentence,
                                      resolve_compile)
from explorer.train.probes import GradientProbe, measure_responses, weight_grad_norms
from explorer.train.store import Run, disk_full_message, is_disk_full

EVAL_BATCH = 500


class Control:
    """Pause, resume and stop a training from another thread or process (the job manager, a page, Ctrl-C).

    ``event`` makes the two flags: ``threading.Event`` within a process, a multiprocessing
    context's ``Event`` for a worker process (explorer/train/execution.py).
    """

    def __init__(self, event=threading.Event):
        self._stop = event()
        self._running = event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block until resumed or stopped; False if ``timeout`` passed first."""
        return self._running.wait(timeout)


@dataclass
class TrainResult:
    run_dir: str
    state: str
    message: str
    step: int
    total_steps: int
    train_error: float | None
    test_error: float | None
    images_per_sec: float | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


def lr_at(step: int, total_steps: int, optim: OptimConfig) -> float:
    """Warm-up, then the initial rate divided by 10 at each milestone (50% and 75% by default)."""
    if step < optim.warmup_steps:
        return optim.warmup_lr
    lr = optim.lr
    for milestone in optim.lr_milestones:
        if step >= int(milestone * total_steps):
            lr *= optim.lr_decay
    return lr


def model_options(config: RunConfig, num_classes: int, image_size: int) -> dict:
    """The build_model options of ``config`` for data with these classes and image size.

    The one place they are derived: the job queue's fit check, the trainer and Grad-CAM's rebuild
    of a trained run all ask here.
    """
    options = {"num_classes": num_classes}
    family = resolve(config.model.name).family
    if family == "mlp":
        raise ValueError(f"{config.model.name} is for 2-D data; train it in the playground, not on images")
    if family in ("cifar", "imagenet", "vgg"):
        options["input_size"] = image_size
    if config.model.shortcut is not None:
        options["shortcut"] = config.model.shortcut
    return options


def fits_checkable_before_loading(config: RunConfig) -> bool:
    """Whether the model's input size and class count are known before the data is loaded."""
    return config.data.dataset in BUILT_IN_IMAGE_DATASETS and resolve(config.model.name).family != "mlp"


def check_config_fits(config: RunConfig) -> None:
    """Refuse a model and batch that cannot fit before anything is queued or allocated.

    For a folder data set the class count is known only once it is read: the trainer checks then.
    """
    if fits_checkable_before_loading(config):
        options = model_options(config, BUILT_IN_IMAGE_CLASSES, config.data.image_size)
        check_fits(config.model.name, config.optim.batch_size, resolve_device(config.device), training=True,
                   **options)


def total_steps_for(config: RunConfig, train_images: int) -> tuple[int, int]:
    """(total steps, steps per epoch); the last partial batch of an epoch is dropped."""
    steps_per_epoch = max(1, train_images // config.optim.batch_size)
    if config.optim.steps is not None:
        return config.optim.steps, steps_per_epoch
    return max(1, math.ceil(config.optim.epochs * steps_per_epoch)), steps_per_epoch


def evaluate(model: nn.Module, loader: DeviceLoader, autocast) -> tuple[float, float]:
    """(mean loss, error rate) over the whole loader, in eval mode; the caller's mode is restored."""
    loss_sum = torch.zeros((), device=loader.device)
    wrong = torch.zeros((), device=loader.device)
    count = 0
    with evaluating(model), torch.no_grad():
        for images, labels in loader:
            with autocast():
                logits = model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
            wrong += (logits.argmax(1) != labels).sum()
            count += len(labels)
    loss, error = (torch.stack([loss_sum, wrong]) / max(count, 1)).tolist()
    return loss, error


@dataclass
class Training:
    """The live objects of one run, built once by ``_prepare`` and used by the loop."""

    config: RunConfig
    run: Run
    control: Control
    device: torch.device
    model: nn.Module  # the module itself: probes, checkpoints and evaluation use it
    optimizer: torch.optim.Optimizer
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    probe_images: torch.Tensor  # the held-out batch the layer-response probe runs on
    start_step: int  # 0, or the checkpoint's step when resuming
    total_steps: int
    steps_per_epoch: int
    precision: str  # "fp32" or "bf16": what training steps run in (probes always run in fp32)
    step_model: nn.Module  # what training steps call: ``model``, or torch.compile's wrapper of it
    environment: dict  # what status.json says the run trains on and in (device, versions, precision, compiled)

    def autocast(self):
        return autocast(self.device, self.precision)


@dataclass
class Progress:
    """Where a run stands: what its result reports, whenever it ends."""

    step: int = 0
    total_steps: int = 0
    images_per_sec: float | None = None
    train_error: float | None = None
    test_error: float | None = None


def train(config: RunConfig, run: Run, control: Control | None = None, dataset: ImageDataset | None = None, *,
          checked: bool = False) -> TrainResult:
    """Train ``config`` into ``run``; resumes from its checkpoint when it has one.

    Never raises for a failed run: the state (completed, stopped, diverged, failed) and its
    message are in status.json and in the result. ``dataset``: data handed in (a notebook, a
    benchmark) instead of loading ``config.data``. ``checked``: the caller (the job queue) has
    validated ``config`` and checked that it fits where that is known before loading.
    """
    control = control or Control()
    progress = Progress()
    training = None
    try:
        training = _prepare(config, run, control, dataset, checked, progress)
        # Several runs training at once on the CPU get one thread each (explorer/threads.py).
        with cpu_thread_share() if training.device.type == "cpu" else contextlib.nullcontext():
            return _loop(training, progress)
    except torch.OutOfMemoryError:
        training = None  # free this run's memory so that other runs go on
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return _finish(run, progress, "failed", "out of device memory: try a smaller batch or model (memory released)")
    except ValueError as error:  # bad settings, data that cannot be had, a model that cannot fit
        return _finish(run, progress, "failed", str(error))
    except Exception as error:  # noqa: BLE001 - a run must end with a state, never with a dead thread
        if is_disk_full(error):  # no traceback to keep: the line says what and where
            return _finish(run, progress, "failed", disk_full_message(run.path / "status.json", _what(error)))
        run.write_error_log(traceback.format_exc())
        return _finish(run, progress, "failed", f"{type(error).__name__}: {error} (details in error.log)")
    finally:
        del training
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _prepare(config: RunConfig, run: Run, control: Control, dataset: ImageDataset | None, checked: bool,
             progress: Progress) -> Training:
    """Data, model, optimiser (from the checkpoint when resuming) and loaders, checked before allocation."""
    if not checked:
        validate(config, check_dataset=dataset is None)
    device = resolve_device(config.device)
    run.set_status("running", "loading data", step=0)
    if dataset is None:
        dataset = load_dataset(config.data.dataset, seed=config.seed, train_size=config.data.train_size,
                               test_size=config.data.test_size, data_dir=config.data.data_dir,
                               image_size=config.data.image_size)
    if isinstance(dataset, PointDataset):
        raise ValueError(f"{dataset.name} is a 2-D data set; train MLPs on it in the playground")
    options = model_options(config, dataset.num_classes, dataset.image_size)
    run.save_data_info({"classes": list(dataset.classes), "image_size": dataset.image_size,
                        "mean": list(dataset.mean), "std": list(dataset.std)})
    total_steps, steps_per_epoch = total_steps_for(config, len(dataset.x_train))
    progress.total_steps = total_steps
    if not (checked and fits_checkable_before_loading(config)):
        # Refused before anything is allocated, with the estimate in the message.
        check_fits(config.model.name, config.optim.batch_size, device, training=True, **options)

    with seeded_weights(config.seed):
        model = build_model(config.model.name, **options).to(device)
    # channels_last speeds up convolutions on CUDA and, measured here, on the CPU too (about 30%
    # for ResNet-20 training on 2 cores); MPS gains nothing from it.
    channels_last = device.type in ("cuda", "cpu")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optim.lr, momentum=config.optim.momentum,
                                weight_decay=config.optim.weight_decay)
    start_step = 0
    checkpoint = run.load_checkpoint()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_step = int(checkpoint["step"])
    # Records past the checkpoint (or all, without one) are made again: none twice, none lost.
    run.rewind_to(start_step)
    progress.step = start_step

    loader_options = dict(device=device, mean=dataset.mean, std=dataset.std, channels_last=channels_last)
    train_loader = DeviceLoader(dataset.x_train, dataset.y_train, config.optim.batch_size,
                                augment=config.data.augment, shuffle=True, drop_last=True,
                                seed=config.seed * 1_000_003 + start_step, **loader_options)
    test_loader = DeviceLoader(dataset.x_test, dataset.y_test, EVAL_BATCH, augment=False, shuffle=False,
                               **loader_options)
    probe_images, _ = test_loader.batch(torch.arange(min(config.probes.probe_batch, len(dataset.x_test))))
    precision, precision_why, bf16_feature = choose_precision(config.precision, device)
    step_model, compile_note = model, None
    if resolve_compile(config.compile, device):
        step_model, compile_note = compiled(model)
    where = {**environment(device), "precision": precision,
             "precision_reason": reason_sentence(precision_why, device.type, bf16_feature),
             "precision_why": precision_why, "bf16_feature": bf16_feature,
             "compiled": step_model is not model, "compile_note": compile_note}
    run.set_status("running", f"training on {describe_device(device)}", step=start_step, total_steps=total_steps,
                   environment=where)
    return Training(config, run, control, device, model, optimizer, train_loader, test_loader, probe_images,
                    start_step, total_steps, steps_per_epoch, precision, step_model, where)


class _Tally:
    """Loss and error summed on the device between two logging steps: read once, at the log."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.wrong = torch.zeros((), device=device)
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        self.images = self.batches = 0

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss
        self.wrong += (logits.argmax(1) != labels).sum()
        self.first_bad_step = torch.where((self.first_bad_step < 0) & ~torch.isfinite(loss), step, self.first_bad_step)
        self.images += len(labels)
        self.batches += 1

    def read(self) -> tuple[float, float, int | None]:
        """(mean loss, error rate, first step whose loss was not finite or None), then start over."""
        loss, error, bad = torch.stack([self.loss_sum / self.batches, self.wrong / self.images,
                                        self.first_bad_step.float()]).tolist()  # the one GPU sync of a log
        self.loss_sum.zero_()
        self.wrong.zero_()
        self.images = self.batches = 0
        return loss, error, int(bad) if bad >= 0 else None


class _Clock:
    """Training time only: pauses, evaluation and checkpoints are left out."""

    def __init__(self, device: torch.device):
        synchronize(device)
        self.seconds = 0.0
        self._since = time.perf_counter()

    def lap(self) -> float:
        """Add the time since the last lap (or restart) to the training time."""
        now = time.perf_counter()
        self.seconds += now - self._since
        self._since = now
        return self.seconds

    def restart(self) -> None:
        """Leave out the time since the last lap (evaluation, a checkpoint, a pause)."""
        self._since = time.perf_counter()


def _loop(t: Training, progress: Progress) -> TrainResult:
    config, run, probes = t.config, t.run, t.config.probes
    batches = _endless(t.train_loader)
    tally, clock = _Tally(t.device), _Clock(t.device)
    t.model.train()
    for step in range(t.start_step, t.total_steps):
        if t.control.paused:
            clock.lap()
            _wait_while_paused(t, step)
            clock.restart()
        if t.control.stop_requested:
            _save(t, step)
            return _finish(run, progress, "stopped", f"stopped at step {step} of {t.total_steps}; resumable")

        images, labels = next(batches)
        lr = lr_at(step, t.total_steps, config.optim)
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        probing = probes.probe_every and step % probes.probe_every == 0
        if probing:  # fp32 and eager, so that probes compare across machines and see every module
            with GradientProbe(t.model) as gradient_probe:
                logits = t.model(images)
                loss = F.cross_entropy(logits.float(), labels)
                t.optimizer.zero_grad(set_to_none=True)
                loss.backward()
        else:
            logits, loss = _step_forward_backward(t, images, labels)
        if probing:
            _record_probes(t, step, gradient_probe)
        t.optimizer.step()
        tally.add(step, loss.detach(), logits.detach(), labels)

        done = step + 1
        last = done == t.total_steps
        if done % probes.log_every == 0 or last:
            loss_mean, error, bad_step = tally.read()
            seconds = clock.lap()
            record = {"step": done, "epoch": done / t.steps_per_epoch, "split": "train", "loss": loss_mean,
                      "error": error, "lr": lr, "time": seconds}
            if bad_step is not None:
                run.append_metric(record)
                return _finish(run, progress, "diverged", f"the loss became NaN or infinite at step {bad_step} "
                               f"(lr {lr:g}); try a lower learning rate")
            rate = (done - t.start_step) * config.optim.batch_size / seconds if seconds > 0 else None
            progress.step, progress.images_per_sec, progress.train_error = done, rate, error
            run.append_metric({**record, "images_per_sec": rate})
            run.set_status("running", f"step {done} of {t.total_steps}", step=done, total_steps=t.total_steps,
                           images_per_sec=rate,
                           seconds_left=(t.total_steps - done) * config.optim.batch_size / rate if rate else None)
        if done % probes.eval_every == 0 or last:
            test_loss, progress.test_error = evaluate(t.model, t.test_loader, t.autocast)
            run.append_metric({"step": done, "epoch": done / t.steps_per_epoch, "split": "test", "loss": test_loss,
                               "error": progress.test_error, "lr": lr, "time": clock.seconds})
            clock.restart()  # evaluation is not training time
        if last and probes.probe_every:
            _record_final_probes(t, next(batches))
        if done % probes.checkpoint_every == 0 or last:
            _save(t, done)
            clock.restart()
    progress.step = t.total_steps
    return _finish(run, progress, "completed", f"completed {t.total_steps} steps")


def _step_forward_backward(t: Training, images: torch.Tensor, labels: torch.Tensor):
    """(logits, loss) of one training step, gradients computed; a compiled model that fails to
    compile (at its first call) is dropped for the module itself, with one logged line."""
    try:
        with t.autocast():
            logits = t.step_model(images)
        loss = F.cross_entropy(logits.float(), labels)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return logits, loss
    except torch.OutOfMemoryError:
        raise  # the run's own failure, compiled or not (train() frees the memory and says so)
    except Exception as error:  # noqa: BLE001 - only a compiled model's failure is caught here
        if t.step_model is t.model:
            raise
        note = compile_failure(error)
        t.step_model = t.model
        t.environment = {**t.environment, "compiled": False, "compile_note": note}
        t.run.update_status(environment=t.environment)  # a Ray worker's run can write, not read (RemoteRun)
        return _step_forward_backward(t, images, labels)


def _endless(loader: DeviceLoader):
    """The loader's batches, epoch after epoch (each epoch reshuffled)."""
    while True:
        yield from loader


def _wait_while_paused(t: Training, step: int) -> None:
    t.run.set_status("paused", f"paused at step {step}", step=step)
    t.control.wait_while_paused()
    if not t.control.stop_requested:
        t.run.set_status("running", f"resumed at step {step}", step=step)


def _record_probes(t: Training, step: int, gradient_probe: GradientProbe) -> None:
    t.run.append_probe({"step": step, "kind": "grad_norm", "blocks": gradient_probe.read(),
                        "layers": weight_grad_norms(t.model)})
    t.run.append_probe({"step": step, "kind": "response_std", "layers": measure_responses(t.model, t.probe_images)})


def _record_final_probes(t: Training, batch) -> None:
    """Probes of the weights the run saves, at step ``total_steps``.

    A probe at step s is taken before update s+1, so it describes the weights after s updates, and
    the loop's last one never describes the saved model. This one does: one more batch, forward and
    backward for the gradient probe but no update, and BatchNorm's running statistics put back as
    they were (a train-mode forward moves them)."""
    images, labels = batch
    buffers = {name: buffer.clone() for name, buffer in t.model.named_buffers()}
    with GradientProbe(t.model) as gradient_probe:  # in fp32, as every probe
        logits = t.model(images)
        t.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits.float(), labels).backward()
    t.optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, buffer in t.model.named_buffers():
            buffer.copy_(buffers[name])
    _record_probes(t, t.total_steps, gradient_probe)


def _save(t: Training, step: int) -> None:
    state_dict = {key: value.detach().cpu().contiguous() for key, value in t.model.state_dict().items()}
    t.run.save_model(state_dict)
    t.run.save_checkpoint({"model": state_dict, "optimizer": t.optimizer.state_dict(), "step": step})
    t.run.update_status(checkpoint_step=step)  # where an interrupted run will resume from


def _what(error: OSError) -> str:
    """The file a failed write named, by its name in the run folder."""
    return Path(error.filename).name.split(".tmp")[0] if getattr(error, "filename", None) else "a record"


def _finish(run: Run, progress: Progress, final_state: str, message: str) -> TrainResult:
    try:
        if run.exists():  # not a run deleted while it trained
            run.set_status(final_state, message, step=progress.step, images_per_sec=progress.images_per_sec)
    except OSError as error:  # a full disk: the result carries the state, and a listing shows the run
        if not is_disk_full(error):  # as interrupted once this process is gone (store.orphaned)
            raise
    return TrainResult(str(run.path), final_state, message, progress.step, progress.total_steps,
                       progress.train_error, progress.test_error, progress.images_per_sec)
