"""What a model costs before it is built for real: parameters, multiply-adds, activation memory,
and whether a training batch fits on a device.

Measured on the ``meta`` device: shapes flow, nothing is allocated, so even ResNet-1202 or VGG-19
costs no memory to inspect. Multiply-adds come from ``torch.utils.flop_counter`` (convolutions and
matrix products; it reports FLOPs = 2 x MACs). This module sits with the models, below training:
the trainer and the job queue refuse a model that cannot fit before anything is allocated, and
explorer/analysis/complexity.py adds timing and the paper's tables on top.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.i18n import Translate, untranslated

from explorer.device import available_memory_bytes, resolve_device
from explorer.models.mode import in_mode
from explorer.models.registry import build_model, check_options, resolve

MAX_BATCH_SIZE = 65_536
# Traced with two images: training-mode BatchNorm needs more than one value per channel, and a
# deep net's last maps are 1x1 at small input sizes.
TRACE_BATCH = 2
BYTES_PER_FLOAT = 4
# SGD with momentum keeps a weight, a gradient and a momentum buffer per parameter.
TRAINING_COPIES_PER_PARAMETER = 3
# Refuse what would take more than this share of the free memory: the rest is for everything else.
MEMORY_HEADROOM = 0.8
# Traced profiles are kept on disk too, so that a new server (or CLI call, or test process) does not
# trace ResNet-1202 again: 22 s for the paper's thirteen models on 2 cores, 10 s of it ResNet-1202.
# Keyed on torch's version and the source of explorer/models/: a changed model is traced afresh.
PROFILE_CACHE_ENV = "RESNET_EXPLORER_PROFILE_CACHE"  # a folder; "off" keeps nothing on disk
DEFAULT_PROFILE_CACHE = Path("~/.cache/resnet-explorer/profiles")


class ModelTooLarge(ValueError):
    """The model at this batch size would not fit; the message carries the estimate."""


@dataclass(frozen=True)
class MemoryEstimate:
    model: str
    batch_size: int
    training: bool
    parameter_bytes: int  # weights (and, when training, gradients and momentum), fp32
    activation_bytes: int  # for the whole batch

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes

    def describe(self, _: Translate = untranslated) -> str:
        text = (_("{model} at batch {batch:,} needs about {total} for training ({parameters} of parameters, "
                  "gradients and momentum, {activations} of activations)") if self.training else
                _("{model} at batch {batch:,} needs about {total} for a forward pass ({parameters} of parameters, "
                  "{activations} of activations)"))
        return text.format(model=self.model, batch=self.batch_size, total=format_bytes(self.total_bytes),
                           parameters=format_bytes(self.parameter_bytes),
                           activations=format_bytes(self.activation_bytes))


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def format_count(count: float) -> str:
    """12,800 -> "12.8 K", 40,550,000 -> "40.55 M", 4.09e9 -> "4.09 G": four significant digits at most."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.4g} {unit}"
    return f"{count:,.0f}"


def meta_model(name: str, **options) -> nn.Module:
    """The model with shapes but no storage: free to build at any size."""
    with torch.device("meta"):
        return build_model(name, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@dataclass(frozen=True)
class ForwardProfile:
    """What one forward pass of one input costs."""

    input_shape: tuple[int, ...]
    params: int
    macs: int  # FlopCounterMode counts 2 FLOPs per multiply-add
    activation_bytes: int  # saved by autograd for backward, once per storage, parameters excluded
    inference_peak_bytes: int  # largest input plus output of one layer


def profile_forward(model: nn.Module, input_shape: tuple[int, ...]) -> ForwardProfile:
    """Parameters, MACs and memory of ``model`` on one input, in a single training-mode pass.

    Parameters and their views (a transposed weight, say) are left out of the saved bytes: they
    exist anyway. The caller's ``model.training`` is restored.
    """
    device = next(model.parameters()).device
    parameter_storages = {parameter.untyped_storage()._cdata for parameter in model.parameters()}
    saved: dict[int, int] = {}
    peak = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in parameter_storages:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    def record_layer(module, inputs, output):
        nonlocal peak
        in_bytes = sum(t.nbytes for t in inputs if isinstance(t, torch.Tensor))
        peak = max(peak, (in_bytes + output.nbytes) // TRACE_BATCH)

    leaves = [module for module in model.modules() if not list(module.children())]
    handles = [leaf.register_forward_hook(record_layer) for leaf in leaves]
    counter = FlopCounterMode(display=False)
    try:
        with in_mode(model, training=True), counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.empty(TRACE_BATCH, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    # Saved tensors grow with the batch, except BatchNorm's per-channel statistics, saved once per
    # batch: per image they come out halved, a few kilobytes low for a whole network.
    return ForwardProfile(
        input_shape=tuple(input_shape),
        params=count_parameters(model),
        macs=counter.get_total_flops() // 2 // TRACE_BATCH,
        activation_bytes=sum(saved.values()) // TRACE_BATCH,
        inference_peak_bytes=peak,
    )


@lru_cache(maxsize=1)
def _code_version() -> str:
    """torch's version and a digest of every model's source: what a traced profile depends on."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _profile_path(name: str, options: tuple) -> Path | None:
    folder = os.environ.get(PROFILE_CACHE_ENV, str(DEFAULT_PROFILE_CACHE))
    if folder == "off":
        return None
    key = hashlib.sha256(repr((name, options)).encode()).hexdigest()[:16]
    return Path(folder).expanduser() / f"{_code_version()}-{key}.json"


def _read_profile(path: Path | None, name: str, options: tuple) -> ForwardProfile | None:
    if path is None:
        return None
    try:
        record = json.loads(path.read_text())
        if record.pop("model") != [name, [list(option) for option in options]]:
            return None  # a digest collision, however unlikely
        return ForwardProfile(**{**record, "input_shape": tuple(record["input_shape"])})
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # absent, unreadable or from another layout: trace again


def _write_profile(path: Path | None, name: str, options: tuple, profile: ForwardProfile) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": [name, [list(option) for option in options]], **asdict(profile)}
        # Written whole, then renamed: two servers tracing the same model never leave half a file.
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as file:
            json.dump(record, file)
        os.replace(file.name, path)
    except OSError:
        pass  # a read-only home: the profile is only kept in memory


def profile_if_ready(name: str, **options) -> ForwardProfile | None:
    """The profile if it is already known (in memory or on disk), without tracing: None if not."""
    spec = resolve(name)
    options_key = tuple(sorted(check_options(spec, options).items()))
    if (spec.name, options_key) in _traced:
        return _traced[spec.name, options_key]
    if _read_profile(_profile_path(spec.name, options_key), spec.name, options_key) is None:
        return None
    return _profile_named(spec.name, options_key)


_traced: dict[tuple, ForwardProfile] = {}  # what _profile_named returned, for profile_if_ready


@lru_cache(maxsize=256)
def _profile_named(name: str, options: tuple) -> ForwardProfile:
    # Deep nets take seconds to trace on meta (BatchNorm runs as Python decompositions there), and
    # the app, the CLI and the memory checks ask for the same few models again and again.
    path = _profile_path(name, options)
    profile = _read_profile(path, name, options)
    if profile is None:
        model = meta_model(name, **dict(options))
        profile = profile_forward(model, tuple(model.input_shape))
        _write_profile(path, name, options, profile)
    _traced[name, options] = profile
    return profile


def profile_named(name: str, **options) -> ForwardProfile:
    # Keyed on every option, defaults filled in: {"input_size": 16} and {"num_classes": 10,
    # "input_size": 16} are the same model, and the job queue and the trainer ask in those two ways.
    spec = resolve(name)
    return _profile_named(spec.name, tuple(sorted(check_options(spec, options).items())))


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be a whole number from 1 to {MAX_BATCH_SIZE:,}, got {batch_size!r}")
    return batch_size


def estimate_memory(name: str, batch_size: int, training: bool = True, **options) -> MemoryEstimate:
    check_batch_size(batch_size)
    profile = profile_named(name, **options)
    copies = TRAINING_COPIES_PER_PARAMETER if training else 1
    per_image = profile.activation_bytes if training else profile.inference_peak_bytes
    return MemoryEstimate(
        model=resolve(name).name,
        batch_size=batch_size,
        training=training,
        parameter_bytes=profile.params * BYTES_PER_FLOAT * copies,
        activation_bytes=per_image * batch_size,
    )


def check_fits(
    name: str, batch_size: int, device: torch.device | str = "auto", training: bool = True, **options
) -> MemoryEstimate:
    """Refuse, before anything is allocated, a model and batch that would not fit on the device."""
    device = resolve_device(device) if isinstance(device, str) else device
    estimate = estimate_memory(name, batch_size, training, **options)
    available = available_memory_bytes(device)
    if estimate.total_bytes > MEMORY_HEADROOM * available:
        raise ModelTooLarge(
            f"{estimate.describe()}, but {device.type} has {format_bytes(available)} free; "
            f"try a smaller batch or model"
        )
    return estimate


