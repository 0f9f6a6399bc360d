"""One registry of model names: ``build_model(name, **options)``.

Names:
    cifar-resnet{D}, cifar-plain{D}, cifar-preact-resnet{D}   D = 6n+2 (20, 32, 44, 56, 110, 1202...)
    resnet{18,34,50,101,152}, plain{18,34,50,101,152}          ImageNet family
    vgg16, vgg19
    mlp-plain, mlp-residual                                    deep MLPs for 2-D data
"""

from __future__ import annotations

import difflib
import inspect
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from explorer.models.cifar import CifarResNet, blocks_per_stage
from explorer.models.imagenet import IMAGENET_DEPTHS, ImageNetResNet
from explorer.models.mlp import DeepMLP
from explorer.models.vgg import VGG, VGG_CONFIGS

PAPER_CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)


@dataclass(frozen=True)
class ModelSpec:
    """What a name means: the class to build and the arguments the name fixes."""

    name: str
    family: str  # "cifar", "imagenet", "vgg" or "mlp"
    factory: Callable[..., nn.Module]
    fixed: dict

    @property
    def options(self) -> dict:
        """The options a caller may set, with their defaults."""
        signature = inspect.signature(self.factory)
        return {
            key: parameter.default
            for key, parameter in signature.parameters.items()
            if key not in self.fixed
        }


_PATTERNS: list[tuple[re.Pattern, str, Callable[..., nn.Module], Callable[[re.Match], dict]]] = [
    (re.compile(r"cifar-preact-resnet(\d+)"), "cifar", CifarResNet,
     lambda m: {"depth": int(m[1]), "residual": True, "preact": True}),
    (re.compile(r"cifar-resnet(\d+)"), "cifar", CifarResNet,
     lambda m: {"depth": int(m[1]), "residual": True, "preact": False}),
    (re.compile(r"cifar-plain(\d+)"), "cifar", CifarResNet,
     lambda m: {"depth": int(m[1]), "residual": False, "preact": False}),
    (re.compile(r"resnet(\d+)"), "imagenet", ImageNetResNet, lambda m: {"depth": int(m[1]), "residual": True}),
    (re.compile(r"plain(\d+)"), "imagenet", ImageNetResNet, lambda m: {"depth": int(m[1]), "residual": False}),
    (re.compile(r"vgg(\d+)"), "vgg", VGG, lambda m: {"depth": int(m[1])}),
    (re.compile(r"mlp-(plain|residual)"), "mlp", DeepMLP, lambda m: {"residual": m[1] == "residual"}),
]


def model_names() -> list[str]:
    """The canonical names: every paper depth of each family (other 6n+2 CIFAR depths work too)."""
    names = []
    for prefix in ("cifar-plain", "cifar-resnet", "cifar-preact-resnet"):
        names += [f"{prefix}{depth}" for depth in PAPER_CIFAR_DEPTHS]
    for prefix in ("plain", "resnet"):
        names += [f"{prefix}{depth}" for depth in IMAGENET_DEPTHS]
    names += [f"vgg{depth}" for depth in VGG_CONFIGS]
    names += ["mlp-plain", "mlp-residual"]
    return names


def resolve(name: str) -> ModelSpec:
    """The spec behind a name; unknown names and invalid depths fail naming what is valid."""
    cleaned = str(name).strip().lower()
    for pattern, family, factory, fixed_from in _PATTERNS:
        match = pattern.fullmatch(cleaned)
        if match:
            spec = ModelSpec(cleaned, family, factory, fixed_from(match))
            _check_depth(spec)
            return spec
    close = difflib.get_close_matches(cleaned, model_names(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}.{hint} Valid names: cifar-resnet{{D}}, cifar-plain{{D}}, "
        f"cifar-preact-resnet{{D}} (D = 6n+2), resnet/plain{{18,34,50,101,152}}, vgg16, vgg19, "
        f"mlp-plain, mlp-residual"
    )


def _check_depth(spec: ModelSpec) -> None:
    depth = spec.fixed.get("depth")
    if spec.family == "cifar":
        try:
            blocks_per_stage(depth)
        except ValueError as error:
            raise ValueError(f"{spec.name}: {error}") from None
    elif spec.family == "imagenet" and depth not in IMAGENET_DEPTHS:
        raise ValueError(f"{spec.name}: ImageNet depths are 18, 34, 50, 101 and 152 (got {depth})")
    elif spec.family == "vgg" and depth not in VGG_CONFIGS:
        raise ValueError(f"{spec.name}: VGG depths are 16 and 19 (got {depth})")


def check_options(spec: ModelSpec, options: dict) -> dict:
    """The options merged over the defaults; an unknown option fails naming the valid ones."""
    valid = spec.options
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"{spec.name}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}"
        )
    return {**valid, **options}


def build_model(name: str, **options) -> nn.Module:
    """Build a model by name, e.g. ``build_model("cifar-resnet56", shortcut="B")``.

    Create it under ``torch.device("meta")`` to inspect shapes and costs without allocating.
    """
    spec = resolve(name)
    model = spec.factory(**spec.fixed, **check_options(spec, options))
    model.model_name = spec.name
    return model


_seed_lock = threading.Lock()


@contextmanager
def seeded_weights(seed: int):
    """Draw the weights built inside from ``seed`` alone, whatever other threads do meanwhile.

    Initialisers use torch's global generator, which all threads share: two runs built at once
    with the same seed got different weights. Builders take turns, and the caller's stream is
    left where it was.
    """
    with _seed_lock, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
