"""The playground's engine: plain against residual deep MLPs on 2-D points, a few steps at a time.

Like the TensorFlow Playground, with the one thing it lacks: residual connections. A
``Playground`` owns one or two ``DeepMLP`` nets (``explorer/models/mlp.py``) built from the same
seed, so the plain and the residual net start from identical weights and see identical batches;
they differ only in the shortcut. The app's worker thread (live.py) calls ``run_for`` a slice of a second at a time and
redraws; the CLI calls ``train_once``, which steps once with all its steps. Both read the same
``PlaygroundSettings`` (settings.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from explorer.data.toy2d import make_points
from explorer.i18n import Translate, untranslated
from explorer.models.mlp import DeepMLP
from explorer.models.mode import evaluating
from explorer.models.registry import seeded_weights
from explorer.playground.settings import LIVE_FIELDS, PlaygroundSettings
from explorer.threads import cpu_thread_share

SGD_MOMENTUM = 0.9
GRID_RESOLUTION = 50  # the decision boundary is drawn from a 50 x 50 grid of predictions
HISTORY_LIMIT = 1000  # points per curve kept; older ones are thinned by half when it is reached
CHUNK_SECONDS = 0.02  # run_for trains in chunks this long, so it stops close to its budget
MAX_CLI_STEPS = 10_000_000  # the most steps train_once (the CLI's --steps) takes


# ---------------------------------------------------------------------------------------------
# Threads. A width-16 layer is a 32 x 16 matrix product: far too small to split across cores, and
# OpenMP's worker threads spin while they wait. Measured on the 2-core machine, depth 50, width 16:
# 164 steps/s with one thread against 137 with two when idle, and 130 against 1 (one) while other
# processes kept both cores busy. So the playground trains with one intra-op thread. The thread
# count is process-wide: explorer/threads.py lowers it only while some playground or several
# training jobs work, and restores it when the last one stops.

def one_thread():
    """The playground's share of the CPU: one intra-op thread (explorer/threads.py)."""
    return cpu_thread_share(single=True)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    step: int
    train_loss: float
    test_loss: float
    train_accuracy: float
    test_accuracy: float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class PlaygroundNet:
    """One net (``kind`` "plain" or "residual"), its optimiser, its batch order and its record."""

    def __init__(self, kind: str, settings: PlaygroundSettings):
        self.kind = kind
        with seeded_weights(settings.seed):  # identical weights for both nets, whatever other threads do
            self.model = DeepMLP(settings.depth, settings.width, settings.activation,
                                 batch_norm=settings.norm == "batchnorm", residual=kind == "residual",
                                 init=settings.init)
        if settings.optimiser == "adam":
            # fused: one kernel for all parameters, 8x faster than the per-tensor loop at depth 50.
            self.optimiser = torch.optim.Adam(self.model.parameters(), lr=settings.lr, fused=True)
        else:
            self.optimiser = torch.optim.SGD(self.model.parameters(), lr=settings.lr, momentum=SGD_MOMENTUM,
                                             foreach=True)
        self.generator = torch.Generator().manual_seed(settings.seed)  # the same batches for both nets
        self.hidden_layers = [self.model.stem, *(block.linear for block in self.model.blocks)]
        self.steps = 0
        self.train_seconds = 0.0
        self.diverged = False
        self.history: list[Evaluation] = []

    def set_lr(self, lr: float) -> None:
        for group in self.optimiser.param_groups:
            group["lr"] = lr

    def train(self, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int) -> None:
        if self.diverged:
            return  # a net whose loss is not finite cannot recover; spare the CPU
        self.model.train()
        start = time.perf_counter()
        for _step in range(steps):
            index = torch.randint(len(x), (batch_size,), generator=self.generator)
            loss = F.cross_entropy(self.model(x[index]), y[index])
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            self.steps += 1
        self.train_seconds += time.perf_counter() - start
        if steps and not math.isfinite(loss.item()):  # one sync per call, not per step
            self.diverged = True

    @property
    def steps_per_sec(self) -> float | None:
        return self.steps / self.train_seconds if self.train_seconds > 0 else None

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with evaluating(self.model):  # BatchNorm uses its running statistics, as at test time
            return self.model(x)

    def evaluate(self, data: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Evaluation:
        numbers = {}
        for split, (x, y) in data.items():
            logits = self.logits(x)
            numbers[f"{split}_loss"] = F.cross_entropy(logits, y).item()
            numbers[f"{split}_accuracy"] = (logits.argmax(1) == y).float().mean().item()
        return Evaluation(step=self.steps, **numbers)

    def probabilities(self, points: torch.Tensor) -> np.ndarray:
        """P(class 1) at each point; NaN where the net has diverged."""
        return torch.softmax(self.logits(points), dim=1)[:, 1].numpy()

    def gradient_norms(self) -> list[float] | None:
        """‖∂loss/∂W‖ of each hidden layer's weight matrix on the last batch, input side first."""
        if self.hidden_layers[0].weight.grad is None:
            return None
        return torch.stack([layer.weight.grad.norm() for layer in self.hidden_layers]).tolist()

    def record(self, evaluation: Evaluation) -> None:
        self.history.append(evaluation)
        if len(self.history) > HISTORY_LIMIT:
            # Keep the first and the latest point; drop every other one in between.
            self.history = [*self.history[:-1:2], self.history[-1]]


@dataclass
class NetView:
    """What the page draws for one net."""

    kind: str
    steps: int
    evaluation: Evaluation
    history: list[Evaluation]
    probabilities: np.ndarray  # (resolution, resolution): rows follow grid_y, columns grid_x
    gradient_norms: list[float] | None
    steps_per_sec: float | None
    diverged: bool


class Playground:
    """The data and the nets of one setup; train them a little at a time and look at them."""

    def __init__(self, settings: PlaygroundSettings):
        self.settings = settings.validate()
        self.data = make_points(settings.dataset, seed=settings.seed, train_size=settings.train_size,
                                test_size=settings.test_size, noise=settings.noise)
        self.splits = {
            "train": (torch.from_numpy(self.data.x_train), torch.from_numpy(self.data.y_train)),
            "test": (torch.from_numpy(self.data.x_test), torch.from_numpy(self.data.y_test)),
        }
        every_point = np.concatenate([self.data.x_train, self.data.x_test])
        # The drawn square: every point, a margin, rounded up to a tenth.
        self.extent = math.ceil(float(np.abs(every_point).max()) * 1.1 * 10) / 10
        self.nets = {kind: PlaygroundNet(kind, settings) for kind in settings.kinds}
        self.record()

    @property
    def steps(self) -> int:
        return max(net.steps for net in self.nets.values())

    def takes(self, settings: PlaygroundSettings) -> bool:
        """Whether these nets can go on under ``settings`` (only the learning rate or batch size differ)."""
        def fixed(some: PlaygroundSettings) -> dict:
            return {name: value for name, value in dataclasses.asdict(some).items() if name not in LIVE_FIELDS}

        return fixed(settings) == fixed(self.settings)

    def apply(self, settings: PlaygroundSettings) -> bool:
        """Take on new settings: the learning rate and batch size at once; anything else needs new
        nets, which the caller builds (returns False)."""
        settings.validate()
        if not self.takes(settings):
            return False
        if settings.lr != self.settings.lr:
            for net in self.nets.values():
                net.set_lr(settings.lr)
        self.settings = settings
        return True

    def step(self, steps: int = 1) -> None:
        """``steps`` training steps for every net (the same batches for each)."""
        x, y = self.splits["train"]
        with one_thread():
            for net in self.nets.values():
                net.train(x, y, steps, self.settings.batch_size)

    def run_for(self, seconds: float, max_steps: int = 100_000) -> int:
        """Train every net for about ``seconds`` of wall time in all; returns the steps each took."""
        start = time.perf_counter()
        done, chunk = 0, 1
        while done < max_steps:
            chunk_start = time.perf_counter()
            self.step(chunk)
            done += chunk
            per_step = (time.perf_counter() - chunk_start) / chunk
            left = seconds - (time.perf_counter() - start)
            if left < per_step or all(net.diverged for net in self.nets.values()):
                break
            chunk = max(1, min(int(min(CHUNK_SECONDS, left) / max(per_step, 1e-6)), max_steps - done))
        return done

    def record(self) -> dict[str, Evaluation]:
        """Evaluate every net on the whole training and test sets and add it to its history."""
        with one_thread():
            evaluations = {kind: net.evaluate(self.splits) for kind, net in self.nets.items()}
        for kind, evaluation in evaluations.items():
            net = self.nets[kind]
            net.diverged = net.diverged or not math.isfinite(evaluation.train_loss)
            if not net.history or net.history[-1].step != evaluation.step:
                net.record(evaluation)
            else:
                net.history[-1] = evaluation
        return evaluations

    def grid_axis(self, resolution: int = GRID_RESOLUTION) -> np.ndarray:
        return np.linspace(-self.extent, self.extent, resolution, dtype=np.float32)

    def views(self, resolution: int = GRID_RESOLUTION) -> dict[str, NetView]:
        """Evaluate, then everything the page draws: boundary, curves, gradient norms."""
        self.record()
        axis = self.grid_axis(resolution)
        grid_x, grid_y = np.meshgrid(axis, axis)
        points = torch.from_numpy(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1))
        views = {}
        with one_thread():
            for kind, net in self.nets.items():
                views[kind] = NetView(
                    kind=kind, steps=net.steps, evaluation=net.history[-1], history=list(net.history),
                    probabilities=net.probabilities(points).reshape(resolution, resolution),
                    gradient_norms=net.gradient_norms(), steps_per_sec=net.steps_per_sec, diverged=net.diverged,
                )
        return views


def train_once(settings: PlaygroundSettings, steps: int) -> dict:
    """What the CLI prints: train ``steps`` steps, then the final numbers of each net."""
    if not 1 <= steps <= MAX_CLI_STEPS:
        raise ValueError(f"--steps must be from 1 to {MAX_CLI_STEPS:,}, got {steps}")
    playground = Playground(settings)
    playground.step(steps)
    evaluations = playground.record()
    results = {}
    for kind, net in playground.nets.items():
        results[kind] = {**evaluations[kind].to_json(), "steps_per_sec": net.steps_per_sec,
                         "diverged": net.diverged}
    return results


def _the_net(kind: str, _: Translate) -> str:
    if kind == "plain":
        return _("the plain net")
    if kind == "residual":
        return _("the residual net")
    return _("the {kind} net").format(kind=kind)


def summarise(views: Mapping[str, NetView], _: Translate = untranslated) -> str:
    """One sentence of facts about the shown state, for the page (nothing claimed that was not measured),
    in the page's language ``_``."""
    parts = []
    for kind, view in views.items():
        if view.diverged:
            parts.append(_("{net} diverged (its loss is not a number): lower the learning rate and reset").format(
                net=_the_net(kind, _)))
            continue
        evaluation = view.evaluation
        parts.append(_("{net} has training loss {loss:.3f} and test accuracy {accuracy:.0%}").format(
            net=_the_net(kind, _), loss=evaluation.train_loss, accuracy=evaluation.test_accuracy))
    steps = max(view.steps for view in views.values())
    facts = "; ".join(parts)
    text = (_("After {steps:,} step, {facts}.") if steps == 1 else _("After {steps:,} steps, {facts}.")).format(
        steps=steps, facts=facts)
    if {"plain", "residual"} <= set(views) and not any(view.diverged for view in views.values()) and steps:
        plain, residual = views["plain"].evaluation.train_loss, views["residual"].evaluation.train_loss
        if abs(plain - residual) < 0.02:
            text += " " + _("So far the two are about level on the training set.")
        else:
            lower = "residual" if residual < plain else "plain"
            text += " " + _("So far {net} fits the training set better.").format(net=_the_net(lower, _))
    return text
