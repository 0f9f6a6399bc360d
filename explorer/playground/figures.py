"""Plotly figures of the residual playground (engine.py computes what they show).

Kept apart from explorer/figures.py (whose general helpers, such as ``log_ticks``, they use)
because these are redrawn several times a second: the decision boundary is an image, the curves
are plain dicts (no per-trace validation by plotly.graph_objects) and every number is rounded
before it is sent to the browser.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from explorer.figures import log_ticks
from explorer.i18n import Translate, untranslated

# The TensorFlow Playground's colours: orange for class 0, blue for class 1.
CLASS_COLOURS = ("#f59322", "#0877bd")
NET_COLOURS = {"plain": "#555555", "residual": "#9467bd"}
NET_TITLES = {"plain": "Plain", "residual": "Residual"}  # English; _net_title gives them in the page's language


def _net_title(kind: str, _: Translate) -> str:
    if kind == "plain":
        return _("Plain")
    if kind == "residual":
        return _("Residual")
    return NET_TITLES.get(kind, kind)


def _round(values, digits: int = 4) -> list:
    """Floats for JSON, to ``digits`` significant digits; NaN and infinities become None (a gap)."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in np.asarray(values, dtype=float).ravel()]


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def _boundary_colours() -> np.ndarray:
    """256 colours from class 0 through a pale grey (P = 0.5) to class 1, lightened so points stand out."""
    low, middle, high = (_hex(colour) for colour in (CLASS_COLOURS[0], "#e8eaeb", CLASS_COLOURS[1]))
    t = np.linspace(0, 1, 256, dtype=np.float32)[:, None]
    colours = np.where(t < 0.5, low + (middle - low) * (t / 0.5), middle + (high - middle) * ((t - 0.5) / 0.5))
    return (255 - 0.55 * (255 - colours)).astype(np.uint8)


BOUNDARY_COLOURS = _boundary_colours()


def boundary_image(probabilities: np.ndarray, extent: float, x_train: np.ndarray, y_train: np.ndarray,
                   x_test: np.ndarray, y_test: np.ndarray, size: int = 480) -> np.ndarray:
    """P(class 1) over the square [-extent, extent]^2 as colour, with the training points (white rim)
    and test points (black rim) on top, coloured by their true class: an RGB uint8 (size, size, 3).

    An image, not a plotly heatmap: the browser redraws it several times a second, and an image
    costs it next to nothing where 500 SVG markers and an interpolated heatmap cost a core.
    ``probabilities`` has rows along y (upwards) and columns along x; NaN (a diverged net) is grey.
    """
    from PIL import Image, ImageDraw

    levels = np.nan_to_num(np.asarray(probabilities, dtype=np.float32), nan=0.5).clip(0, 1)
    small = Image.fromarray(np.flipud(np.round(levels * 255).astype(np.uint8)))  # image rows run downwards
    smooth = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR))
    image = Image.fromarray(BOUNDARY_COLOURS[smooth])
    draw = ImageDraw.Draw(image)
    radius = max(2.0, size / 120)

    def pixels(points: np.ndarray) -> np.ndarray:
        scaled = (points + extent) / (2 * extent) * (size - 1)
        return np.stack([scaled[:, 0], size - 1 - scaled[:, 1]], axis=1)

    for points, labels, rim in ((x_train, y_train, "#ffffff"), (x_test, y_test, "#000000")):
        for (column, row), label in zip(pixels(points), labels):
            draw.ellipse((column - radius, row - radius, column + radius, row + radius),
                         fill=CLASS_COLOURS[int(label)], outline=rim, width=1)
    return np.asarray(image)


def loss_curves_figure(histories: Mapping[str, list], _: Translate = untranslated) -> dict:
    """Training (dashed) and test (solid) loss against step, one colour per net, log scale; texts in
    ``_``'s language."""
    traces = []
    for kind, history in histories.items():
        steps = [evaluation.step for evaluation in history]
        for split, dash in (("train", "dash"), ("test", "solid")):
            traces.append({
                "type": "scatter", "mode": "lines", "x": steps,
                "y": _round([getattr(evaluation, f"{split}_loss") for evaluation in history]),
                "name": (_("{net} train") if split == "train" else _("{net} test")).format(net=_net_title(kind, _)),
                "legendgroup": kind,
                "line": {"color": NET_COLOURS.get(kind), "dash": dash, "width": 2 if split == "test" else 1.5},
            })
    layout = {
        "height": 320, "margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "title": {"text": _("Loss")},
        "xaxis": {"title": {"text": _("step")}, "rangemode": "tozero"},
        "yaxis": {"title": {"text": _("cross-entropy (log scale)")}, "type": "log",
                  "tickvals": log_ticks([y for trace in traces for y in trace["y"]])},
        "legend": {"orientation": "h", "y": -0.25}, "uirevision": "loss",
    }
    return {"data": traces, "layout": layout}


def gradient_norms_figure(norms: Mapping[str, list[float] | None], _: Translate = untranslated) -> dict:
    """‖∂loss/∂W‖ of each hidden layer's weights on the last batch, input side first, log scale; texts in
    ``_``'s language."""
    traces = []
    for kind, values in norms.items():
        if not values:
            continue
        # A zero gradient has no place on a log axis; it is drawn as a gap.
        traces.append({
            "type": "scatter", "mode": "lines+markers", "x": list(range(1, len(values) + 1)),
            "y": _round([value if value > 0 else float("nan") for value in values], 3),
            "name": _net_title(kind, _), "line": {"color": NET_COLOURS.get(kind)}, "marker": {"size": 4},
        })
    if not traces:  # before the first step: plotly refuses a figure without traces
        traces.append({"type": "scatter", "x": [], "y": [], "showlegend": False})
    layout = {
        "height": 320, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "title": {"text": _("Gradient norm per layer (last batch)")},
        "xaxis": {"title": {"text": _("hidden layer (input side → output side)")}},
        "yaxis": {"title": {"text": _("‖∂loss/∂W‖ (log scale)")}, "type": "log", "exponentformat": "power",
                  "tickvals": log_ticks([y for trace in traces for y in trace["y"]])},
        "legend": {"orientation": "h", "y": -0.25}, "uirevision": "gradients",
    }
    return {"data": traces, "layout": layout}
