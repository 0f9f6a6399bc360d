"""Loss landscape: the test loss of a trained net along random directions around its weights.

Li, Xu, Taylor, Studer and Goldstein (NeurIPS 2018, "Visualizing the Loss Landscape of Neural
Nets") plot ``L(theta + a d1 + b d2)`` for two random directions ``d1``, ``d2`` in weight space,
made comparable across nets by *filter normalisation*: each filter of a direction is rescaled to
the norm of the same filter of the trained weights. Along such directions ResNet-56's surface is
smooth and nearly convex, while the same net without shortcuts is chaotic, more so at depth 110.

Directions, as the paper's: a Gaussian draw per parameter tensor; each filter (the slice along
dim 0: a conv's output channel, a linear layer's row) rescaled to the norm of the corresponding
filter of the trained weights. BatchNorm weights and biases, and all other 1-D parameters
(biases), get a zero direction, and BatchNorm's running statistics stay as trained: "BN
parameters and statistics held fixed". Every evaluation is in eval mode. The Gaussian for a
tensor comes from a ``torch.Generator`` seeded by (seed, direction index, parameter name, shape),
so it does not depend on the model class: a plain net and a residual net of the same depth
(whose parameters match, with option-A shortcuts) get the same draws.

The loss is the mean cross-entropy on the first N images of the run's own test set, in fp32; the
centre (a = b = 0) is the run's loss at its saved weights. A NaN or infinite loss far from the
centre is kept as None (a gap), never an error.

Smoothness, one number per surface (``smoothness["nonconvexity"]``): over every interior grid
point and each axis, the second difference ``L[i-1] - 2 L[i] + L[i+1]``; the share of their
total size that is negative, ``sum(max(0, -D2)) / sum(|D2|)``. 0 means the slice is convex along
every axis (a bowl, however steep); about 0.5 means as much downward as upward curvature, as in
noise or a chaotic surface. Being a ratio it does not reward a flat or shallow surface, and gaps
are skipped. Also reported: ``local_minima`` (strict interior local minima: below both neighbours
in 1-D, below all 8 in 2-D; a smooth bowl has at most 1) and ``max_second_difference`` (the
largest |D2| divided by the range of the finite losses; for a parabola on P points it is
8 / (P-1)^2 whatever its steepness).

``loss_landscape`` takes plain data and returns a JSON-able dict, so that it can run in a worker
process; ``progress(done, total)`` counts evaluations. It estimates its time from one measured
evaluation before it starts, and refuses beyond ``max_seconds``.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import torch
from torch import nn

from explorer.analysis.lesion import (
    DEFAULT_IMAGES,
    Progress,
    check_count,
    cpu_share,
    evaluate,
    json_safe,
    load_trained_run,
    shown_weights,
)
from explorer.device import resolve_device, synchronize
from explorer.i18n import Translate, untranslated
from explorer.models.mode import evaluating

DEFAULT_POINTS = {1: 41, 2: 15}
DEFAULT_SPAN = 1.0  # the paper's plots run from -1 to 1
DEFAULT_MAX_SECONDS = 600.0


def _stream_seed(seed: int, index: int, name: str, shape: tuple[int, ...]) -> int:
    key = f"{seed}/{index}/{name}/{'x'.join(map(str, shape))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def gaussian_draw(seed: int, index: int, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The raw Gaussian of direction ``index`` for the parameter ``name``: fp32, on the CPU."""
    generator = torch.Generator().manual_seed(_stream_seed(seed, index, name, tuple(shape)))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def filter_normalized_directions(model: nn.Module, seed: int = 0, count: int = 1) -> list[dict[str, torch.Tensor]]:
    """``count`` filter-normalised random directions for ``model``'s parameters, keyed by name.

    Each parameter of 2 or more dimensions gets a Gaussian whose every filter (slice along dim 0)
    has the norm of the same filter of the weights; 1-D parameters (BatchNorm, biases) get zeros.
    """
    directions = []
    for index in range(count):
        direction = {}
        for name, parameter in model.named_parameters():
            weights = parameter.detach()
            if weights.ndim <= 1:
                direction[name] = torch.zeros_like(weights)
                continue
            draw = gaussian_draw(seed, index, name, tuple(weights.shape))
            weight_norms = weights.float().cpu().flatten(1).norm(dim=1)
            draw_norms = draw.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (weight_norms / draw_norms).view(-1, *([1] * (draw.ndim - 1)))
            direction[name] = (draw * scale).to(weights.device, weights.dtype)
        directions.append(direction)
    return directions


def slice_losses(model: nn.Module, batches, directions: list[dict[str, torch.Tensor]], axis: list[float],
                 centre: tuple[float, float] | None = None, progress: Progress | None = None) -> dict:
    """Loss and error at ``theta + a d1`` (1 direction) or ``theta + a d1 + b d2`` (2) for a, b in ``axis``.

    Returns {"loss", "error"}: lists over ``axis`` for 1-D; for 2-D, lists of rows, row j at
    ``b = axis[j]``. Only the parameters with a non-zero direction move; the model's weights,
    buffers and mode are given back as they were, also on error. ``centre``: the (loss, error)
    at the weights, if known, reused for the grid's centre point.
    """
    if len(directions) not in (1, 2):
        raise ValueError(f"a slice has 1 or 2 directions, got {len(directions)}")
    moving = [(name, parameter) for name, parameter in model.named_parameters()
              if any(bool(direction[name].any()) for direction in directions)]
    originals = {name: parameter.detach().clone() for name, parameter in moving}
    points = [(a,) for a in axis] if len(directions) == 1 else [(a, b) for b in axis for a in axis]
    results = []
    if progress:
        progress(0, len(points))
    try:
        with evaluating(model), torch.no_grad():
            for done, coordinates in enumerate(points, start=1):
                if centre is not None and not any(coordinates):
                    results.append(centre)
                else:
                    for name, parameter in moving:
                        moved = originals[name].clone()
                        for step, direction in zip(coordinates, directions):
                            moved.add_(direction[name], alpha=step)
                        parameter.copy_(moved)
                    results.append(evaluate(model, batches))
                if progress:
                    progress(done, len(points))
    finally:
        with torch.no_grad():
            for name, parameter in moving:
                parameter.copy_(originals[name])
    losses = [loss for loss, _error in results]
    errors = [error for _loss, error in results]
    if len(directions) == 2:
        size = len(axis)
        losses = [losses[row * size:(row + 1) * size] for row in range(size)]
        errors = [errors[row * size:(row + 1) * size] for row in range(size)]
    return {"loss": losses, "error": errors}


def fold_batchnorm(model: nn.Module, directions: list[dict[str, torch.Tensor]], batches,
                   centre: tuple[float, float]) -> tuple[nn.Module, list[dict[str, torch.Tensor]]]:
    """The same function with each BatchNorm folded into the convolution before it, and the
    directions carried over to it; ``model`` and ``directions`` themselves if that cannot be done.

    In eval mode a BatchNorm after a convolution is a per-channel scale ``s`` and shift: the folded
    convolution's weight is ``w * s``. BatchNorm holds still along these directions, so
    ``(w + a d) * s = w * s + a (d * s)``: the folded net at ``a`` is the net at ``a``, one
    elementwise pass fewer per layer (28% less time per evaluation for ResNet-20 on the CPU,
    measured). Checked: the folded net's loss at the centre must match ``centre`` (the unfolded
    net's) to 1e-4, else the unfolded net is used. Nets fx cannot trace are used unfolded.
    """
    from torch import fx
    from torch.fx.experimental.optimization import fuse

    try:
        traced = fx.symbolic_trace(model)
        modules = dict(traced.named_modules())
        scales = {}  # folded convolution's name -> its BatchNorm's per-channel scale
        for node in traced.graph.nodes:
            if node.op == "call_module" and isinstance(modules[node.target], nn.BatchNorm2d):
                source = node.args[0]
                if (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1
                        and isinstance(modules[source.target], nn.Conv2d)):
                    bn = modules[node.target]
                    scales[source.target] = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
        folded = fuse(model)  # a copy; the model itself is not changed
    except Exception:  # noqa: BLE001 - untraceable control flow: the unfolded net is exact, only slower
        return model, directions
    carried = []
    for direction in directions:
        moved = {}
        for name, parameter in folded.named_parameters():
            owner, _dot, kind = name.rpartition(".")
            if owner in scales and kind == "weight":
                moved[name] = direction[name] * scales[owner].view(-1, *([1] * (parameter.dim() - 1)))
            elif name in direction:
                moved[name] = direction[name]
            else:
                moved[name] = torch.zeros_like(parameter)  # a folded convolution's new bias: held still
        carried.append(moved)
    loss, _error = evaluate(folded, batches)
    if not math.isclose(loss, centre[0], rel_tol=1e-4, abs_tol=1e-6):
        return model, directions
    return folded, carried


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def surface_smoothness(loss: list) -> dict:
    """Non-convexity, strict interior local minima and the largest second difference (module docstring).

    ``loss``: a 1-D list or a 2-D list of rows; None, NaN and infinity are gaps.
    """
    two_d = bool(loss) and isinstance(loss[0], (list, tuple))
    grid = [list(row) for row in loss] if two_d else [list(loss)]
    rows, columns = len(grid), len(grid[0])
    lines = grid + ([[row[c] for row in grid] for c in range(columns)] if two_d else [])
    second = [line[i - 1] - 2 * line[i] + line[i + 1] for line in lines for i in range(1, len(line) - 1)
              if all(_finite(value) for value in line[i - 1:i + 2])]
    total = sum(abs(value) for value in second)
    finite = [value for row in grid for value in row if _finite(value)]
    spread = max(finite) - min(finite) if finite else 0.0
    around = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc] if two_d else [(0, -1), (0, 1)]
    interior = [(r, c) for r in (range(1, rows - 1) if two_d else (0,)) for c in range(1, columns - 1)]
    minima = sum(1 for r, c in interior
                 if _finite(grid[r][c]) and all(_finite(grid[r + dr][c + dc]) and grid[r][c] < grid[r + dr][c + dc]
                                                for dr, dc in around))
    return {
        "nonconvexity": sum(max(0.0, -value) for value in second) / total if total > 0 else None,
        "local_minima": minima,
        "local_minima_share": minima / len(interior) if interior else None,
        "max_second_difference": max(abs(value) for value in second) / spread if second and spread > 0 else None,
        "gaps": len(grid) * columns - len(finite),
    }


def loss_landscape(run_dir: str | Path, points: int | None = None, span: float = DEFAULT_SPAN,
                   images: int = DEFAULT_IMAGES, dims: int = 1, seed: int = 0, device: str = "cpu",
                   progress: Progress | None = None, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> dict:
    """A 1-D or 2-D slice of a trained run's test loss along filter-normalised random directions.

    ``points`` (P, default 41 for 1-D and 15 for 2-D) coordinates evenly from ``-span`` to ``span``
    on each axis; ``images``: the first N images of the run's test set (all of it if it has
    fewer); ``seed``: the directions' seed. Returns, JSON-able:

    - ``run_dir``, ``model``, ``label``, ``weights`` (final or the latest checkpoint), ``images``,
      ``seconds`` (all of it), ``device``, ``seed``, ``dims``, ``span``, ``points``, ``notes``;
    - ``axis``: the P coordinates; ``loss`` and ``error``: a list of P (1-D) or P lists of P, row j
      at the second direction's ``axis[j]`` (2-D); None where the loss is NaN or infinite;
    - ``centre_loss``, ``centre_error``: at the saved weights;
    - ``smoothness``: see the module docstring; ``estimate_seconds``: the estimate made before.

    Before the grid, one evaluation at the centre is timed and the whole is estimated from it; an
    estimate over ``max_seconds`` (None: no limit) is refused in one line. Refuses also, like the
    lesion study, a run without model.pt and an MLP run.
    """
    started = time.perf_counter()
    if dims not in (1, 2) or isinstance(dims, bool):
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    points = DEFAULT_POINTS[dims] if points is None else check_count(points, "points", 3)
    images, seed = check_count(images, "images"), check_count(seed, "seed", 0)
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        raise ValueError(f"span must be a positive number, got {span!r}")
    if max_seconds is not None and (not isinstance(max_seconds, (int, float)) or max_seconds <= 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    device = resolve_device(device)
    trained = load_trained_run(run_dir, images, device, "loss landscape")
    model = trained.model
    # Symmetric by construction, with an exact 0 in the middle of an odd grid.
    axis = [span * (2 * i - (points - 1)) / (points - 1) for i in range(points)]
    evaluations = points ** dims - (1 if points % 2 else 0)  # an odd grid's centre is the centre evaluation
    with cpu_share(device):
        first_images, first_labels = trained.batches[0]
        evaluate(model, [(first_images[:32], first_labels[:32])])  # warm-up: the first pass sets up kernels
        synchronize(device)
        clock = time.perf_counter()
        centre = evaluate(model, trained.batches)
        synchronize(device)
        one = time.perf_counter() - clock
        estimate = evaluations * one
        if max_seconds is not None and estimate > max_seconds:
            raise ValueError(f"would take about {estimate:,.0f} s ({evaluations:,} evaluations of {trained.images:,} "
                             f"images at {one:.2f} s each; the limit is {max_seconds:g} s); lower the points or the images")
        directions = filter_normalized_directions(model, seed=seed, count=dims)
        grid_model, grid_directions = fold_batchnorm(model, directions, trained.batches, centre)
        grid = slice_losses(grid_model, trained.batches, grid_directions, axis, centre=centre, progress=progress)
    result = {
        "run_dir": trained.run_dir, "model": trained.model_name, "label": trained.label, "weights": trained.weights,
        "images": trained.images, "device": device.type, "seed": seed, "dims": dims, "span": float(span),
        "points": points, "axis": axis, "loss": grid["loss"], "error": grid["error"],
        "centre_loss": centre[0], "centre_error": centre[1],
        "smoothness": surface_smoothness(json_safe(grid["loss"])),
        "estimate_seconds": estimate, "seconds": time.perf_counter() - started, "notes": trained.notes,
    }
    return json_safe(result)


def convex_radius(axis: list[float], loss: list) -> float | None:
    """For a 1-D slice: the largest r such that the loss is convex (every second difference at least
    0) at every grid point with |a| <= r; None for a 2-D slice or a centre that is not convex."""
    if not loss or isinstance(loss[0], (list, tuple)):
        return None
    centre = min(range(len(axis)), key=lambda i: abs(axis[i]))
    radius = None
    for step in range(0, len(axis)):
        inner = [i for i in (centre - step, centre + step) if 0 < i < len(axis) - 1]
        if not inner:
            break
        if not all(all(_finite(loss[j]) for j in (i - 1, i, i + 1)) and loss[i - 1] - 2 * loss[i] + loss[i + 1] >= 0
                   for i in inner):
            break
        radius = max(abs(axis[i]) for i in inner)
    return radius


def landscape_reading(results: list[dict], _: Translate = untranslated) -> list[str]:
    """Sentences on what these slices measured, for the page and the CLI: each run's centre loss,
    non-convexity and local minima; and, for a plain and a residual run of the same depth, whether
    the residual one's slice is clearly smoother (non-convexity lower by more than 0.05, a margin
    above the seed-to-seed spread we measured). Numbers only from ``results``; words in the page's
    language ``_``."""
    from explorer.models import resolve

    lines = []
    for result in results:
        smooth = result["smoothness"]
        nonconvexity = smooth.get("nonconvexity")
        shape = _("a convex bowl along every axis") if nonconvexity is not None and nonconvexity < 0.05 else (
            _("clearly non-convex") if nonconvexity is not None else _("too flat to say"))
        gaps = (_("; {gaps} points gave NaN or infinite losses (gaps)").format(gaps=smooth["gaps"])
                if smooth.get("gaps") else "")
        centre = "-" if result["centre_loss"] is None else f"{result['centre_loss']:.3f}"  # NaN: kept as None
        error = result.get("centre_error")
        error = (_(" (test error {error:.1%})").format(error=error)
                 if isinstance(error, (int, float)) else "")  # plain runs beside converged nets
        minima = smooth["local_minima"]
        minima = (_("{count} strict local minimum") if minima == 1 else _("{count} strict local minima")).format(
            count=minima)
        lines.append(_("**{label}** ({weights} weights): loss {centre} at its weights{error}, up to {edge:,.1f} at "
                       "the edge; non-convexity {nonconvexity} ({shape}), {minima}{gaps}.").format(
            label=result["label"], weights=shown_weights(result["weights"], _), centre=centre, error=error,
            edge=max(_flat(result["loss"])), nonconvexity="-" if nonconvexity is None else f"{nonconvexity:.3f}",
            shape=shape, minima=minima, gaps=gaps))
        radius = convex_radius(result["axis"], result["loss"]) if result.get("axis") else None
        if nonconvexity is not None and nonconvexity >= 0.05 and radius:
            lines[-1] += " " + _("It is convex within |a| <= {radius:.2f} of its weights; the non-convexity comes "
                                 "from farther out, where the loss bends the other way as it levels off.").format(
                radius=radius)
    pairs = {}
    for result in results:
        spec = resolve(result["model"])
        pairs.setdefault((spec.family, spec.fixed.get("depth")), {})[bool(spec.fixed.get("residual"))] = result
    for (_family, depth), pair in pairs.items():
        if len(pair) == 2:
            plain, residual = (pair[key]["smoothness"].get("nonconvexity") for key in (False, True))
            if plain is None or residual is None:
                continue
            smoother = residual < plain - 0.05
            numbers = {"depth": depth, "residual": residual, "plain": plain}
            if smoother:
                line = _("At depth {depth} the residual net's slice is clearly smoother than the plain net's "
                         "(non-convexity {residual:.3f} against {plain:.3f}).").format(**numbers)
                why = _("This is Li et al.'s finding.")
            else:
                line = _("At depth {depth} the residual net's slice is not clearly smoother than the plain net's "
                         "(non-convexity {residual:.3f} against {plain:.3f}).").format(**numbers)
                why = (_("Li et al. found the depth-20 net without shortcuts benign too; the chaos they show needs "
                         "depth 56 or 110 and nets trained to convergence.") if (depth or 0) < 56 else
                       _("Li et al.'s nets were trained to convergence; after a short run this plain net's surface "
                         "has not turned chaotic."))
            lines.append(line + " " + why)
    return lines


def _flat(loss: list) -> list[float]:
    rows = loss if loss and isinstance(loss[0], list) else [loss]
    return [value for row in rows for value in row if _finite(value)] or [float("nan")]
