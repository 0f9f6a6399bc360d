"""The trainer: the paper's recipe, instrumented, durable, and controllable from another thread.

Fast where it matters: the data set lives on the device as uint8 and is augmented in whole
batches there; loss and error are summed on the device and read once per logging step; bf16
autocast on CUDA, channels_last on CUDA and the CPU. Evaluation is kept out of the training time.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.analysis.complexity import check_fits
from explorer.data import DeviceLoader, ImageDataset, PointDataset, load_dataset
from explorer.device import describe_device, environment, resolve_device, synchronize
from explorer.models import build_model, resolve, seeded_weights
from explorer.train.config import OptimConfig, RunConfig, validate
from explorer.train.probes import GradientProbe, measure_responses, weight_grad_norms
from explorer.train.store import Run
from explorer.threads import cpu_thread_share

EVAL_BATCH = 500


class Control:
    """Pause, resume and stop a training from another thread (the job manager, a page, Ctrl-C)."""

    def __init__(self):
        self._stop = threading.Event()
        self._running = threading.Event()
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

    def wait_while_paused(self) -> None:
        self._running.wait()


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
    """The build_model options of ``config`` for data with these classes and image size."""
    options = {"num_classes": num_classes}
    family = resolve(config.model.name).family
    if family == "mlp":
        raise ValueError(f"{config.model.name} is for 2-D data; train it in the playground, not on images")
    if family in ("cifar", "imagenet", "vgg"):
        options["input_size"] = image_size
    if config.model.shortcut is not None:
        options["shortcut"] = config.model.shortcut
    return options


def total_steps_for(config: RunConfig, train_images: int) -> tuple[int, int]:
    """(total steps, steps per epoch); the last partial batch of an epoch is dropped."""
    steps_per_epoch = max(1, train_images // config.optim.batch_size)
    if config.optim.steps is not None:
        return config.optim.steps, steps_per_epoch
    return max(1, math.ceil(config.optim.epochs * steps_per_epoch)), steps_per_epoch


def evaluate(model: nn.Module, loader: DeviceLoader, autocast) -> tuple[float, float]:
    """(mean loss, error rate) over the whole loader, in eval mode; the caller's mode is restored."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=loader.device)
    wrong = torch.zeros((), device=loader.device)
    count = 0
    try:
        with torch.no_grad():
            for images, labels in loader:
                with autocast():
                    logits = model(images)
                loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
                wrong += (logits.argmax(1) != labels).sum()
                count += len(labels)
    finally:
        model.train(was_training)
    loss, error = (torch.stack([loss_sum, wrong]) / max(count, 1)).tolist()
    return loss, error


def train(config: RunConfig, run: Run, control: Control | None = None, progress=None,
          dataset: ImageDataset | None = None) -> TrainResult:
    """Train ``config`` into ``run``; resumes from its checkpoint when it has one.

    Never raises for a failed run: the state (completed, stopped, diverged, failed) and its
    message are in status.json and in the result. ``progress(status_dict)`` is called at every
    logging step.
    """
    control = control or Control()
    state = {"step": 0, "total_steps": 0, "images_per_sec": None, "train_error": None, "test_error": None}
    model = optimizer = None
    try:
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
        state["total_steps"] = total_steps
        # Refused before anything is allocated, with the estimate in the message.
        check_fits(config.model.name, config.optim.batch_size, device, training=True, **options)

        with seeded_weights(config.seed):
            model = build_model(config.model.name, **options).to(device)
        cuda = device.type == "cuda"
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
            run.truncate_after(start_step)
        state["step"] = start_step

        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

        loader_options = dict(device=device, mean=dataset.mean, std=dataset.std, channels_last=channels_last)
        train_loader = DeviceLoader(dataset.x_train, dataset.y_train, config.optim.batch_size,
                                    augment=config.data.augment, shuffle=True, drop_last=True,
                                    seed=config.seed * 1_000_003 + start_step, **loader_options)
        test_loader = DeviceLoader(dataset.x_test, dataset.y_test, EVAL_BATCH, augment=False, shuffle=False,
                                   **loader_options)
        probe_count = min(config.probes.probe_batch, len(dataset.x_test))
        probe_images, _ = test_loader.batch(torch.arange(probe_count))
        run.set_status("running", f"training on {describe_device(device)}", step=start_step, total_steps=total_steps,
                       environment=environment(device))
        # Several runs training at once on the CPU get one thread each (explorer/threads.py).
        with cpu_thread_share() if device.type == "cpu" else contextlib.nullcontext():
            return _loop(config, run, control, progress, model, optimizer, train_loader, test_loader, probe_images,
                         autocast, device, start_step, total_steps, steps_per_epoch, state)
    except torch.OutOfMemoryError:
        # Free this run's memory so that other runs go on.
        model = optimizer = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return _finish(run, state, "failed", "out of device memory: try a smaller batch or model (memory released)")
    except ValueError as error:  # bad settings, data that cannot be had, a model that cannot fit
        return _finish(run, state, "failed", str(error))
    except Exception as error:  # noqa: BLE001 - a run must end with a state, never with a dead thread
        (run.path / "error.log").write_text(traceback.format_exc())
        return _finish(run, state, "failed", f"{type(error).__name__}: {error} (details in error.log)")
    finally:
        del model, optimizer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _finish(run: Run, state: dict, final_state: str, message: str) -> TrainResult:
    if run.path.exists():
        run.set_status(final_state, message, step=state["step"], images_per_sec=state["images_per_sec"])
    return TrainResult(str(run.path), final_state, message, state["step"], state["total_steps"],
                       state["train_error"], state["test_error"], state["images_per_sec"])


def _save(run: Run, model: nn.Module, optimizer, step: int) -> None:
    state_dict = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    run.save_model(state_dict)
    run.save_checkpoint({"model": state_dict, "optimizer": optimizer.state_dict(), "step": step})


def _loop(config, run, control, progress, model, optimizer, train_loader, test_loader, probe_images, autocast,
          device, start_step, total_steps, steps_per_epoch, state) -> TrainResult:
    probes = config.probes
    batches = iter(train_loader)
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device)
    first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
    seen = logged_batches = 0
    training_seconds = 0.0
    model.train()
    synchronize(device)
    clock = time.perf_counter()
    for step in range(start_step, total_steps):
        if control.paused:
            training_seconds += time.perf_counter() - clock
            run.set_status("paused", f"paused at step {step}", step=step)
            control.wait_while_paused()
            if not control.stop_requested:
                run.set_status("running", f"resumed at step {step}", step=step)
            clock = time.perf_counter()
        if control.stop_requested:
            _save(run, model, optimizer, step)
            return _finish(run, state, "stopped", f"stopped at step {step} of {total_steps}; resumable")
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(train_loader)
            images, labels = next(batches)
        lr = lr_at(step, total_steps, config.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        probing = probes.probe_every and step % probes.probe_every == 0
        with GradientProbe(model) if probing else contextlib.nullcontext() as gradient_probe:
            with autocast():
                logits = model(images)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if probing:
            run.append_probe({"step": step, "kind": "grad_norm", "blocks": gradient_probe.read(),
                              "layers": weight_grad_norms(model)})
            with autocast():
                run.append_probe({"step": step, "kind": "response_std", "layers": measure_responses(model, probe_images)})
        optimizer.step()
        detached = loss.detach()
        loss_sum += detached
        wrong += (logits.detach().argmax(1) != labels).sum()
        first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(detached), step, first_bad_step)
        seen += len(labels)
        logged_batches += 1
        done = step + 1
        last = done == total_steps
        if done % probes.log_every == 0 or last:
            # The one synchronisation of a logging step.
            loss_mean, error, bad = (torch.stack([loss_sum / logged_batches, wrong / seen,
                                                  first_bad_step.float()])).tolist()
            training_seconds += time.perf_counter() - clock
            clock = time.perf_counter()
            if bad >= 0:
                _save_records_so_far(run, done, steps_per_epoch, loss_mean, error, lr, training_seconds)
                return _finish(run, state, "diverged", f"the loss became NaN or infinite at step {int(bad)} "
                               f"(lr {lr:g}); try a lower learning rate")
            rate = _images_per_sec(run, config, done - start_step, training_seconds)
            state.update(step=done, images_per_sec=rate, train_error=error)
            run.append_metric({"step": done, "epoch": done / steps_per_epoch, "split": "train", "loss": loss_mean,
                               "error": error, "lr": lr, "time": training_seconds, "images_per_sec": rate})
            remaining = (total_steps - done) * config.optim.batch_size / rate if rate else None
            status = run.set_status("running", f"step {done} of {total_steps}", step=done, total_steps=total_steps,
                                    images_per_sec=rate, seconds_left=remaining)
            if progress:
                progress(status)
            loss_sum.zero_()
            wrong.zero_()
            seen = logged_batches = 0
        if done % probes.eval_every == 0 or last:
            test_loss, test_error = evaluate(model, test_loader, autocast)
            state["test_error"] = test_error
            run.append_metric({"step": done, "epoch": done / steps_per_epoch, "split": "test", "loss": test_loss,
                               "error": test_error, "lr": lr, "time": training_seconds})
            clock = time.perf_counter()  # evaluation is not training time
        if done % probes.checkpoint_every == 0 or last:
            _save(run, model, optimizer, done)
            clock = time.perf_counter()
    state["step"] = total_steps
    return _finish(run, state, "completed", f"completed {total_steps} steps")


def _images_per_sec(run, config, steps_done, seconds) -> float | None:
    return steps_done * config.optim.batch_size / seconds if seconds > 0 else None


def _save_records_so_far(run, done, steps_per_epoch, loss, error, lr, seconds) -> None:
    run.append_metric({"step": done, "epoch": done / steps_per_epoch, "split": "train", "loss": loss,
                       "error": error, "lr": lr, "time": seconds})
