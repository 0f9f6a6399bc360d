"""Run a model in eval (or training) mode for a while, then give the caller's mode back.

Probes, evaluation, Grad-CAM, the playground and the complexity trace all look at a model that
someone else is training or showing; none of them may leave it in another mode than it was in,
also when they fail halfway.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def in_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """``model`` in training mode (``training=True``) or eval mode inside; its own mode after."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def evaluating(model: nn.Module):
    """Eval mode inside (BatchNorm uses its running statistics, dropout is off); the caller's mode after."""
    return in_mode(model, training=False)
