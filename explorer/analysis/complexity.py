"""Complexity of a model beside the paper's tables: parameters, multiply-adds, memory, forward time.

The paper's "FLOPs" (Table 1) are multiply-adds, so we report MACs and say so. Parameters, MACs
and memory are traced on the ``meta`` device by explorer/models/cost.py (which also holds the
memory estimate and the fit check, below training); only timing runs for real, here.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from explorer.device import environment, resolve_device, synchronize
from explorer.models import build_model, resolve
from explorer.models.cost import check_batch_size, check_fits, profile_if_ready, profile_named
from explorer.models.imagenet import IMAGENET_DEPTHS
from explorer.paper import paper_macs, paper_params

# The paper's complexity comparison: VGG-19, plain-34, the ImageNet ResNets, the CIFAR ResNets.
PAPER_MODELS = (
    "vgg19", "plain34", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "cifar-resnet20", "cifar-resnet32", "cifar-resnet44", "cifar-resnet56", "cifar-resnet110",
    "cifar-resnet1202",
)
BOTTLENECK_DEPTHS = {depth for depth, (kind, _) in IMAGENET_DEPTHS.items() if kind == "bottleneck"}


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
        if result.paper_macs is not None:
            # Where the stride sits differs only in bottleneck blocks: for every other net that
            # Table 1 lists, the paper's placement is ours, and so is the count.
            paper_stride = result.macs_paper_bottleneck or result.macs
            row["gmacs_paper_stride"] = paper_stride / 1e9
            row["gmacs_paper_stride_diff"] = relative_difference(paper_stride, result.paper_macs)
        for batch, milliseconds in (result.forward_ms or {}).items():
            row[f"forward_ms_batch{batch}"] = milliseconds
        rows.append(row)
    return rows


def measure_if_ready(name: str) -> Complexity | None:
    """``measure(name)`` if every trace it needs is already known (at once), else None."""
    spec = resolve(name)
    variants = [{}]
    if spec.family == "imagenet" and spec.fixed["depth"] in BOTTLENECK_DEPTHS:
        variants.append({"bottleneck": "paper"})
    if any(profile_if_ready(name, **variant) is None for variant in variants):
        return None
    return measure(name)


def warm_cache(names: list[str] | tuple[str, ...] = PAPER_MODELS, stop=None) -> None:
    """Trace each model once so later ``measure`` calls return at once (run it in a background thread).

    ``stop``, a threading.Event, ends it between two models (at interpreter exit, say).
    """
    for name in names:
        if stop is not None and stop.is_set():
            return
        measure(name)
