"""Complexity of a model: parameters, multiply-adds, activation memory and forward time.

Multiply-adds come from ``torch.utils.flop_counter`` (convolutions and matrix products; it reports
FLOPs = 2 x MACs). The paper's "FLOPs" (Table 1) are multiply-adds, so we report MACs and say so.
Parameters, MACs and memory are measured on the ``meta`` device: shapes flow, nothing is
allocated, so even ResNet-1202 or VGG-19 costs no memory to inspect. Only timing runs for real.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.device import available_memory_bytes, environment, resolve_device, synchronize
from explorer.models import build_model, resolve
from explorer.models.imagenet import IMAGENET_DEPTHS
from explorer.models.registry import check_options
from explorer.paper import paper_macs, paper_params

# The paper's complexity comparison: VGG-19, plain-34, the ImageNet ResNets, the CIFAR ResNets.
PAPER_MODELS = (
    "vgg19", "plain34", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "cifar-resnet20", "cifar-resnet32", "cifar-resnet44", "cifar-resnet56", "cifar-resnet110",
    "cifar-resnet1202",
)
MAX_BATCH_SIZE = 65_536
# Traced with two images: training-mode BatchNorm needs more than one value per channel, and a
# deep net's last maps are 1x1 at small input sizes.
TRACE_BATCH = 2
BOTTLENECK_DEPTHS = {depth for depth, (kind, _) in IMAGENET_DEPTHS.items() if kind == "bottleneck"}
BYTES_PER_FLOAT = 4
# SGD with momentum keeps a weight, a gradient and a momentum buffer per parameter.
TRAINING_COPIES_PER_PARAMETER = 3
# Refuse what would take more than this share of the free memory: the rest is for everything else.
MEMORY_HEADROOM = 0.8


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

    def describe(self) -> str:
        purpose = "training" if self.training else "a forward pass"
        return (
            f"{self.model} at batch {self.batch_size:,} needs about {format_bytes(self.total_bytes)} for {purpose} "
            f"({format_bytes(self.parameter_bytes)} of parameters"
            f"{', gradients and momentum' if self.training else ''}, "
            f"{format_bytes(self.activation_bytes)} of activations)"
        )


@dataclass
class Complexity:
    model: str
    family: str
    input_shape: tuple[int, ...]
    params: int
    macs: int  # multiply-adds per image at input_shape
    activation_bytes_per_image: int  # what autograd keeps for the backward pass, fp32
    inference_peak_bytes_per_image: int  # largest input+output of one layer, fp32
    paper_params: float | None = None
    paper_macs: float | None = None
    macs_paper_bottleneck: int | None = None  # bottleneck nets with the paper's stride placement
    forward_ms: dict[int, float] | None = None
    environment: dict | None = field(default=None)

    def to_json(self) -> dict:
        record = asdict(self)
        record["input_shape"] = list(self.input_shape)
        if self.forward_ms is not None:
            record["forward_ms"] = {str(batch): ms for batch, ms in self.forward_ms.items()}
        for key in ("macs_paper_bottleneck", "forward_ms", "environment"):
            if record[key] is None:
                del record[key]
        return record


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


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
    was_training = model.training
    model.train()
    try:
        with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(torch.empty(TRACE_BATCH, *input_shape, device=device))
    finally:
        model.train(was_training)
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


@lru_cache(maxsize=256)
def _profile_named(name: str, options: tuple) -> ForwardProfile:
    # Deep nets take seconds to trace on meta (BatchNorm runs as Python decompositions there), and
    # the app, the CLI and the memory checks ask for the same few models again and again.
    model = meta_model(name, **dict(options))
    return profile_forward(model, tuple(model.input_shape))


def profile_named(name: str, **options) -> ForwardProfile:
    # Keyed on every option, defaults filled in: {"input_size": 16} and {"num_classes": 10,
    # "input_size": 16} are the same model, and the job queue and the trainer ask in those two ways.
    spec = resolve(name)
    return _profile_named(spec.name, tuple(sorted(check_options(spec, options).items())))


def measure(name: str, **options) -> Complexity:
    """Parameters, MACs and memory of a named model, next to the paper's numbers where it has them."""
    spec = resolve(name)
    profile = profile_named(name, **options)
    result = Complexity(
        model=spec.name,
        family=spec.family,
        input_shape=profile.input_shape,
        params=profile.params,
        macs=profile.macs,
        activation_bytes_per_image=profile.activation_bytes,
        inference_peak_bytes_per_image=profile.inference_peak_bytes,
        paper_params=paper_params(spec.name),
        paper_macs=paper_macs(spec.name) if profile.input_shape[-1] == 224 else None,
    )
    if spec.family == "imagenet" and spec.fixed["depth"] in BOTTLENECK_DEPTHS:
        result.macs_paper_bottleneck = profile_named(name, **{**options, "bottleneck": "paper"}).macs
    return result


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


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,32"`` -> [1, 32]; anything else fails with the reason."""
    sizes = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"batch sizes must be whole numbers separated by commas, got {part!r}") from None
        sizes.append(check_batch_size(value))
    if not sizes:
        raise ValueError("give at least one batch size, e.g. 1,32")
    return sorted(set(sizes))


def time_forward(
    name: str,
    batch_sizes: list[int],
    device: torch.device | str = "auto",
    warmup: int = 2,
    repeats: int = 5,
    **options,
) -> dict[int, float]:
    """Median milliseconds of one no-grad forward pass, per batch size.

    Each batch size is checked against free memory first. Warm-up passes absorb one-time costs
    (allocator growth, cuDNN autotuning); the GPU is synchronised before each clock read.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    batch_sizes = [check_batch_size(batch) for batch in batch_sizes]
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    for batch in batch_sizes:
        check_fits(name, batch, device, training=False, **options)
    model = build_model(name, **options).to(device).eval()
    timings: dict[int, float] = {}
    with torch.no_grad():
        for batch in batch_sizes:
            inputs = torch.randn(batch, *model.input_shape, device=device)
            for _ in range(warmup):
                model(inputs)
            samples = []
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                model(inputs)
                synchronize(device)
                samples.append((time.perf_counter() - start) * 1000)
            timings[batch] = statistics.median(samples)
            del inputs
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return timings


def complexity_report(
    names: list[str] | tuple[str, ...] = PAPER_MODELS,
    time_it: bool = False,
    device: str = "auto",
    batch_sizes: list[int] = (1, 32),
    repeats: int = 5,
) -> list[Complexity]:
    """``measure`` for each model, and forward times when ``time_it``; validates all names first."""
    for name in names:
        resolve(name)
    torch_device = resolve_device(device)
    batch_sizes = [check_batch_size(batch) for batch in batch_sizes]
    results = []
    for name in names:
        result = measure(name)
        if time_it:
            result.forward_ms = time_forward(name, batch_sizes, torch_device, repeats=repeats)
            result.environment = environment(torch_device)
        results.append(result)
    return results


def relative_difference(ours: float, paper: float | None) -> float | None:
    """(ours - paper) / paper, or None where the paper gives no number."""
    return None if not paper else (ours - paper) / paper


def comparison_rows(results: list[Complexity]) -> list[dict]:
    """One flat row per model, ours beside the paper's, for tables and CSV files."""
    rows = []
    for result in results:
        row = {
            "model": result.model,
            "family": result.family,
            "input": "x".join(str(dim) for dim in result.input_shape[1:]),
            "params": result.params,
            "paper_params": result.paper_params,
            "params_diff": relative_difference(result.params, result.paper_params),
            "gmacs": result.macs / 1e9,
            "paper_gmacs": None if result.paper_macs is None else result.paper_macs / 1e9,
            "gmacs_diff": relative_difference(result.macs, result.paper_macs),
            "gmacs_paper_bottleneck": None if result.macs_paper_bottleneck is None else result.macs_paper_bottleneck / 1e9,
            "gmacs_paper_bottleneck_diff": relative_difference(result.macs_paper_bottleneck or 0, result.paper_macs)
            if result.macs_paper_bottleneck else None,
            "activation_mib_per_image": result.activation_bytes_per_image / 2**20,
        }
        for batch, milliseconds in (result.forward_ms or {}).items():
            row[f"forward_ms_batch{batch}"] = milliseconds
        rows.append(row)
    return rows


def warm_cache(names: list[str] | tuple[str, ...] = PAPER_MODELS, stop=None) -> None:
    """Trace each model once so later ``measure`` calls return at once (run it in a background thread).

    ``stop``, a threading.Event, ends it between two models (at interpreter exit, say).
    """
    for name in names:
        if stop is not None and stop.is_set():
            return
        measure(name)
