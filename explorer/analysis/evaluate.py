"""Table 6, live: a net's test error measured here, and its layer responses (Fig. 7) at its saved weights.

Both take any run folder (a run trained here, or a published net made into one by
``explorer.train.pretrained``) and its own test set, as the lesion study does, and are run as jobs
by the pages (``explorer.analysis.tasks``) or directly by ``python -m explorer evaluate``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from explorer.analysis.lesion import Progress, check_count, cpu_share, evaluate, json_safe, load_trained_run
from explorer.device import resolve_device
from explorer.i18n import Translate, untranslated
from explorer.train.probes import measure_responses
from explorer.train.store import Run

ALL_IMAGES = 10**9  # "every test image": load_trained_run uses as many as the test set has
RESPONSE_IMAGES = 500


def published_figures(run_dir: str | Path) -> dict:
    """The published and paper errors of a published net (from its config.json); {} for a run trained here."""
    info = Run(run_dir).config().get("published")
    if not isinstance(info, dict):
        return {}
    return {"published_error": info.get("published_error"), "paper_error": info.get("paper_error"),
            "source": info.get("source")}


def evaluate_run(run_dir: str | Path, images: int | None = None, device: str = "cpu",
                 progress: Progress | None = None) -> dict:
    """The test error of a run's saved weights on the first ``images`` of its test set (all of it by
    default). Returns ``run`` (the folder), ``model``, ``label``, ``error`` (a fraction), ``loss``,
    ``images``, ``seconds`` (the evaluation alone; ``load_seconds``: the model and images before it),
    ``device``, and for a published net ``published_error`` and ``paper_error``."""
    started = time.perf_counter()
    count = ALL_IMAGES if images is None else check_count(images, "images")
    device = resolve_device(device)
    trained = load_trained_run(run_dir, count, device, "evaluation")
    if images is None:  # the whole test set was asked for: that it has fewer than ALL_IMAGES is no news
        trained.notes = [note for note in trained.notes if not note.startswith("asked for")]
    loaded = time.perf_counter()
    total = len(trained.batches)
    wrong = loss_sum = 0.0
    if progress:
        progress(0, total)
    with cpu_share(device):
        for done, batch in enumerate(trained.batches, start=1):
            loss, error = evaluate(trained.model, [batch])
            loss_sum += loss * len(batch[1])
            wrong += error * len(batch[1])
            if progress:
                progress(done, total)
    return json_safe({
        "run": str(run_dir), "run_dir": trained.run_dir, "model": trained.model_name, "label": trained.label,
        "weights": trained.weights, "error": wrong / trained.images, "loss": loss_sum / trained.images,
        "images": trained.images, "seconds": time.perf_counter() - loaded, "load_seconds": loaded - started,
        "device": device.type, "notes": trained.notes, **published_figures(run_dir),
    })


def layer_responses(run_dir: str | Path, images: int = RESPONSE_IMAGES, device: str = "cpu",
                    progress: Progress | None = None) -> dict:
    """Fig. 7 at a run's saved weights: the std of each 3x3 layer's response (after its BN, before
    the ReLU or the addition) over the first ``images`` test images, in eval mode. Returns ``layers``
    [{``name``, ``std``}] in network order, ``mean_std``, ``model``, ``label``, ``images``."""
    images = check_count(images, "images")
    device = resolve_device(device)
    trained = load_trained_run(run_dir, images, device, "layer-response measurement")
    if progress:
        progress(0, 1)
    with cpu_share(device):
        inputs = torch.cat([batch[0] for batch in trained.batches])
        layers = measure_responses(trained.model, inputs)
    if progress:
        progress(1, 1)
    values = [layer["std"] for layer in layers]
    return json_safe({"run_dir": trained.run_dir, "model": trained.model_name, "label": trained.label,
                      "weights": trained.weights, "images": trained.images, "layers": layers,
                      "mean_std": sum(values) / len(values) if values else None, "device": device.type})


def sampling_error(error: float, images: int) -> float:
    """The standard error of an error rate measured on ``images`` independent images."""
    return math.sqrt(max(error * (1 - error), 0.0) / images) if images else math.nan


def evaluation_reading(results: list[dict], _: Translate = untranslated) -> list[str]:
    """Sentences on measured errors against the published and the paper's: within about two
    standard errors of sampling (said as agreeing) or not (said as a disagreement). Numbers only
    from ``results``; ``_`` translates the sentences."""
    lines = []
    for result in results:
        if result.get("published_error") is None:
            continue
        error, images = result["error"], result["images"]
        margin = 2 * sampling_error(error, images)
        parts = []
        for published, reference in ((True, result["published_error"]), (False, result["paper_error"])):
            gap = error - reference
            if abs(gap) <= margin:
                verdict = _("within sampling error")
            elif gap > 0:
                verdict = _("higher by more than sampling error")
            else:
                verdict = _("lower by more than sampling error")
            if published:
                part = _("{gap:+.2f} points from the published figure ({reference:.2f}%): {verdict}")
            else:
                part = _("{gap:+.2f} points from the paper's Table 6 ({reference:.2f}%): {verdict}")
            parts.append(part.format(gap=100 * gap, reference=100 * reference, verdict=verdict))
        subset = (_("CIFAR-10's whole test set") if images >= 10_000 else
                  _("the first {images:,} test images").format(images=images))
        lines.append(_("**{model}**: {error:.2f}% on {subset} (±{margin:.2f} points at two standard errors); "
                       "{comparisons}.").format(model=result["model"], error=100 * error, subset=subset,
                                                margin=100 * margin, comparisons="; ".join(parts)))
    return lines
