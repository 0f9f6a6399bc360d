"""Plotly figures built from measurements; the app, the CLI and notebooks draw the same ones."""

from __future__ import annotations

import math

# Imported whole before any figure is built: plotly checks its values against pandas types through
# sys.modules, and a pandas that another thread (the server's warm-up, another session's page) is
# still importing is half-initialised there ("partially initialized module 'pandas' has no
# attribute 'Series'", seen under AppTest). An import here waits for that import to finish.
import pandas  # noqa: F401
import plotly.graph_objects as go

from explorer.analysis.architecture import Diagram
from explorer.analysis.runs import at_step, curve, gradient_matrix
from explorer.i18n import N_, Translate, untranslated

STAGE_COLOURS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c8c8c"]
ARC_STYLES = {  # shortcut kind: (colour, dash, legend text, translated by the figure's ``_``)
    "identity": ("#222222", "solid", N_("identity shortcut")),
    "pad": ("#d62728", "dot", N_("option A: subsample + zero-pad")),
    "projection": ("#1f77b4", "dash", N_("projection shortcut (1x1 conv)")),
}


def _translated(text: str, translate: Translate) -> str:
    """A text marked with ``N_`` in a table of this module, in the figure's language."""
    return translate(text)


def log_ticks(values) -> list[float] | None:
    """Tick values for a log axis over ``values``: 1, 2, 5 per decade over a narrow range, whole decades
    over a wide one (at most about 8 labels), instead of plotly's crowded minor labels."""
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not positive:
        return None
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    span = max(high - low, 1)
    if span <= 2:
        return [float(f"{mantissa * 10.0**power:.1g}") for power in range(low, high + 1) for mantissa in (1, 2, 5)]
    step = math.ceil(span / 8)
    return sorted(10.0**power for power in range(high, low - 1, -step))


def architecture_figure(diagram: Diagram, title: str = "", _: Translate = untranslated) -> go.Figure:
    """Layers left to right, coloured by stage; each shortcut an arc from a block's input to its sum."""
    figure = go.Figure()
    box_width, box_height = 0.8, 1.0
    for index, layer in enumerate(diagram.layers):
        colour = "#ffffff" if layer.kind == "gap" else STAGE_COLOURS[layer.stage % len(STAGE_COLOURS)]
        figure.add_shape(
            type="rect", x0=index - box_width / 2, x1=index + box_width / 2, y0=0, y1=box_height,
            fillcolor=colour, line=dict(color="#333333", width=1, dash="dot" if layer.kind == "gap" else "solid"),
        )
        if layer.kind == "gap":
            figure.add_annotation(x=index, y=box_height / 2, text=f"+{layer.hidden_blocks}", showarrow=False,
                                  font=dict(size=10))
    figure.add_trace(go.Scatter(
        x=list(range(len(diagram.layers))), y=[box_height / 2] * len(diagram.layers), mode="markers",
        marker=dict(size=18, opacity=0), hovertext=[layer.label for layer in diagram.layers],
        hoverinfo="text", showlegend=False,
    ))
    seen_kinds = set()
    for arc in diagram.arcs:
        colour, dash, text = ARC_STYLES[arc.kind]
        span = arc.end - arc.start
        top = box_height + 0.35 + 0.12 * min(span, 4)
        middle = (arc.start + arc.end) / 2
        figure.add_shape(
            type="path", path=f"M {arc.start},{box_height} Q {middle},{2 * top - box_height} {arc.end},{box_height}",
            line=dict(color=colour, width=1.6, dash=dash),
        )
        if arc.kind not in seen_kinds:  # one legend entry per kind of shortcut
            seen_kinds.add(arc.kind)
            figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=_translated(text, _),
                                        line=dict(color=colour, dash=dash)))
    figure.update_xaxes(visible=False, range=[-1, max(len(diagram.layers), 8)])
    figure.update_yaxes(visible=False, range=[-0.3, 2.6])
    figure.update_layout(
        title=title, height=260, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        plot_bgcolor="white", legend=dict(orientation="h", y=-0.05), hovermode="closest",
    )
    return figure


def macs_vs_params_figure(rows: list[dict], _: Translate = untranslated) -> go.Figure:
    """Our measured multiply-adds against parameters (log-log), with the paper's MACs where given."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=[row["params"] for row in rows], y=[row["gmacs"] for row in rows], mode="markers+text",
        text=[row["model"] for row in rows], textposition=_label_positions(rows), textfont=dict(size=10),
        name=_("measured (ours)"),
        marker=dict(size=10, color="#4c72b0"),
    ))
    with_paper = [row for row in rows if row.get("paper_gmacs")]
    if with_paper:
        figure.add_trace(go.Scatter(
            x=[row["params"] for row in with_paper], y=[row["paper_gmacs"] for row in with_paper], mode="markers",
            name=_("paper, Table 1"), marker=dict(size=12, symbol="x", color="#c44e52"),
        ))
    figure.update_xaxes(type="log", title=_("parameters"), tickvals=[1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 3e8],
                        ticktext=["100k", "300k", "1M", "3M", "10M", "30M", "100M", "300M"])
    figure.update_yaxes(type="log", title=_("GMACs per image (multiply-adds)"),
                        tickvals=[0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30], ticktext=["0.01", "0.03", "0.1", "0.3", "1", "3", "10", "30"])
    figure.update_layout(height=480, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.08))
    return figure


def _label_positions(rows: list[dict], near_decades: float = 0.08) -> list[str]:
    """Where each scatter label goes: right of its marker, unless another marker sits within
    ``near_decades`` on both log axes (plain-34, ResNet-34 and ResNet-50 do): then the points of
    that cluster take, in order, the left, above right and below right, so that no two labels
    (nor a label and a neighbour's marker) overlap."""
    points = [(math.log10(row["params"]), math.log10(row["gmacs"])) for row in rows]
    around = ["middle left", "top right", "bottom right", "top left", "bottom left"]
    positions, used = [], {}
    for index, (x, y) in enumerate(points):
        cluster = [other for other, (ox, oy) in enumerate(points)
                   if abs(ox - x) < near_decades and abs(oy - y) < near_decades]
        if len(cluster) == 1:
            positions.append("middle right")
            continue
        key = min(cluster)  # the cluster's first point names it
        positions.append(around[used.get(key, 0) % len(around)])
        used[key] = used.get(key, 0) + 1
    return positions


def forward_time_figure(rows: list[dict], device_label: str, _: Translate = untranslated) -> go.Figure:
    """Forward time against batch size, one line per model, as measured on ``device_label``."""
    figure = go.Figure()
    for row in rows:
        points = sorted((int(key.removeprefix("forward_ms_batch")), value)
                        for key, value in row.items() if key.startswith("forward_ms_batch"))
        if points:
            figure.add_trace(go.Scatter(x=[batch for batch, _ms in points], y=[ms for _batch, ms in points],
                                        mode="lines+markers", name=row["model"]))
    figure.update_xaxes(type="log", title=_("batch size"), tickvals=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
    figure.update_yaxes(type="log", title=_("forward time (ms, median)"), dtick=1, exponentformat="none")
    figure.update_layout(title=_("Measured on {device}").format(device=device_label), height=420, margin=dict(l=10, r=10, t=40, b=10))
    return figure


# ---------------------------------------------------------------------------------------------
# Training figures, drawn as the paper draws them: training error dashed, test error solid, one
# colour per run (Fig. 1, Fig. 6); layer responses in network order and sorted (Fig. 7).

RUN_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
               "#bcbd22"]
# Points per training curve: a chart is about 1,000 pixels wide, so 1,000 lowest-and-highest pairs
# draw 64k logged steps as they look, in a figure that builds and travels fast.
CURVE_POINTS = 2_000


def _colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def _snapshot_name(label: str, snapshot: dict, _: Translate) -> str:
    """A run's legend entry: its label and which weights the probe record describes (a converged
    net's record says so in ``when``, translated where it was made)."""
    when = snapshot.get("when") or _("step {step}").format(step=snapshot["step"])
    return f"{label} ({when})"


def training_curves_figure(runs, key: str = "error", title: str = "", _: Translate = untranslated) -> go.Figure:
    """``key`` ("error" or "loss") against step for each run: training dashed, test solid."""
    figure = go.Figure()
    for index, records in enumerate(runs):
        for split, dash in (("train", "dash"), ("test", "solid")):
            steps, values = curve(records, split, key, max_points=CURVE_POINTS)
            if not steps:
                continue
            scale = 100 if key == "error" else 1
            figure.add_trace(go.Scatter(
                # A single record (a run's first test, or its first logging interval) has no line to draw: a dot.
                x=steps, y=[value * scale for value in values], mode="lines" if len(steps) > 1 else "markers",
                name=(_("{label} train") if split == "train" else _("{label} test")).format(label=records.label),
                marker=dict(color=_colour(index), size=7),
                legendgroup=records.label, line=dict(color=_colour(index), dash=dash, width=2 if split == "test" else 1.5),
            ))
    figure.update_xaxes(title=_("step"))
    figure.update_yaxes(title=_("error (%)") if key == "error" else _("loss"), rangemode="tozero")
    figure.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=40 if title else 20, b=10),
                         legend=dict(orientation="h", y=-0.2), uirevision="curves")
    return figure


def responses_figure(runs, step: int | None = None, sort: bool = False, _: Translate = untranslated) -> go.Figure:
    """Fig. 7: std of each 3x3 layer's response, in network order or sorted by magnitude."""
    figure = go.Figure()
    for index, records in enumerate(runs):
        snapshot = at_step(records.responses, step)
        if snapshot is None:
            continue
        layers = snapshot["layers"]
        values = [layer["std"] for layer in layers]
        names = [layer["name"] for layer in layers]
        if sort:
            order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)
            values, names = [values[i] for i in order], [names[i] for i in order]
        figure.add_trace(go.Scatter(
            x=list(range(1, len(values) + 1)), y=values, mode="lines+markers", marker=dict(size=4),
            name=_snapshot_name(records.label, snapshot, _),
            line=dict(color=_colour(index)),
            hovertext=names, hoverinfo="text+y",
        ))
    figure.update_xaxes(title=_("layer index (sorted by magnitude)") if sort else _("layer index (original order)"))
    figure.update_yaxes(title=_("std of response"))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=20, b=10), legend=dict(orientation="h", y=-0.25),
                         uirevision="responses")
    return figure


def gradient_depth_figure(runs, step: int | None = None, _: Translate = untranslated) -> go.Figure:
    """The gradient norm at each block's input, from the input side to the output side."""
    figure = go.Figure()
    for index, records in enumerate(runs):
        snapshot = at_step(records.gradients, step)
        if snapshot is None:
            continue
        blocks = snapshot["blocks"]
        figure.add_trace(go.Scatter(
            x=list(range(1, len(blocks) + 1)), y=[block["total"] for block in blocks], mode="lines+markers",
            name=_snapshot_name(records.label, snapshot, _),
            line=dict(color=_colour(index)),
            hovertext=[block["name"] for block in blocks], hoverinfo="text+y",
        ))
    figure.update_xaxes(title=_("block (input side → output side)"))
    # plotly labels the minor ticks of a log axis too ("2, 0.1, 5, 2, 0.01"): give it whole ticks.
    figure.update_yaxes(title=_("‖∂loss/∂x‖ at the block's input"), type="log",
                        tickvals=log_ticks([y for trace in figure.data for y in trace.y]))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=20, b=10), legend=dict(orientation="h", y=-0.25),
                         uirevision="gradient-depth")
    return figure


def gradient_heatmap_figure(records, part: str = "total", _: Translate = untranslated) -> go.Figure:
    """log10 of the gradient norm, step by block.

    The colour range is that of the records after the first: at step 0 (random weights) the norms
    can be orders of magnitude off, and a scale stretched to them leaves the rest of the run in one
    colour. Step 0 still shows, at the end of the scale.
    """
    steps, names, rows = gradient_matrix(records, part)
    later = [value for row in (rows[1:] or rows) for value in row if value is not None]
    scale = dict(zmin=min(later), zmax=max(later)) if later and min(later) < max(later) else {}
    figure = go.Figure(go.Heatmap(z=rows, x=names, y=steps, colorscale="Viridis",
                                  colorbar=dict(title=_("log10 ‖grad‖")), **scale))
    figure.update_xaxes(title=_("block"), tickangle=-45)
    figure.update_yaxes(title=_("step"))
    figure.update_layout(title=records.label, height=380, margin=dict(l=10, r=10, t=40, b=10))
    return figure


def gradient_split_figure(records, step: int | None = None, _: Translate = untranslated) -> go.Figure:
    """Per block, the norm of the gradient through the shortcut and through the residual branch;
    for a plain net, which has no shortcut, the norm at each block's input alone."""
    snapshot = at_step(records.gradients, step)
    figure = go.Figure()
    if snapshot is not None:
        blocks = snapshot["blocks"]
        names = [block["name"] for block in blocks]
        residual = records.residual if records.residual is not None else any(block["shortcut"] > 0 for block in blocks)
        parts = ((("shortcut", _("through the shortcut"), "#444444"),
                  ("residual", _("through the residual branch"), "#c44e52"))
                 if residual else (("total", _("at the block's input (a plain net has no shortcut)"), "#c44e52"),))
        for part, name, colour in parts:
            figure.add_trace(go.Bar(x=names, y=[block[part] for block in blocks], name=name, marker_color=colour))
    figure.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=40, b=10),
                         title=_("{label}, step {step}").format(label=records.label, step=snapshot["step"])
                         if snapshot else f"{records.label}",
                         legend=dict(orientation="h", y=1.1), showlegend=True)
    figure.update_yaxes(title=_("gradient norm"), type="log",
                        tickvals=log_ticks([y for trace in figure.data for y in trace.y]))
    figure.update_xaxes(tickangle=-45)
    return figure


# ---------------------------------------------------------------------------------------------
# The lesion study (Veit et al., 2016) and the loss landscape (Li et al., 2018) of trained runs.

def lesion_blocks_figure(studies: list[dict], title: str = "", _: Translate = untranslated) -> go.Figure:
    """Test error with each single block deleted, one bar per run and block, each run's intact error
    as a dashed line of its colour. For runs of one architecture (their blocks share names); blocks
    that cannot be deleted (a plain block that changes the shape) have no bar."""
    figure = go.Figure()
    names = list(dict.fromkeys(block["name"] for study in studies for block in study["blocks"]))
    for index, study in enumerate(studies):
        colour = _colour(index)
        blocks = study["blocks"]
        figure.add_trace(go.Bar(
            x=[block["name"] for block in blocks],
            y=[None if block["error"] is None else 100 * block["error"] for block in blocks],
            name=_("{label}: one block deleted").format(label=study["label"]), marker_color=colour,
            customdata=[block["kind"] for block in blocks],
            hovertemplate=_("%{{x}} (%{{customdata}}): %{{y:.1f}}% error<extra></extra>").format()))
        figure.add_trace(go.Scatter(
            x=names, y=[100 * study["baseline_error"]] * len(names), mode="lines",
            line=dict(color=colour, dash="dash"),
            name=_("{label} intact: {error:.1%}").format(label=study["label"], error=study["baseline_error"]),
            hoverinfo="skip"))
    figure.update_layout(title=title, barmode="group", height=420, margin=dict(l=10, r=10, t=60 if title else 30, b=10),
                         legend=dict(orientation="h", y=1.18 if title else 1.12),
                         yaxis=dict(title=_("test error (%)"), range=[0, 100]),
                         xaxis=dict(title=_("deleted block (network order)"), categoryorder="array", categoryarray=names))
    return figure


def lesion_random_figure(studies: list[dict], _: Translate = untranslated) -> go.Figure:
    """Mean test error as k random blocks are deleted at once, with one standard deviation over the draws."""
    figure = go.Figure()
    for index, study in enumerate(studies):
        rows = [{"k": 0, "mean_error": study["baseline_error"], "std_error": 0.0}] + study["random_deletions"]
        figure.add_trace(go.Scatter(
            x=[row["k"] for row in rows], y=[100 * row["mean_error"] for row in rows], mode="lines+markers",
            name=study["label"], line=dict(color=_colour(index)),
            error_y=dict(type="data", array=[100 * row["std_error"] for row in rows], visible=True)))
    figure.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                         xaxis=dict(title=_("blocks deleted at random"), dtick=1),
                         yaxis=dict(title=_("test error (%), mean over draws"), range=[0, 100]))
    return figure


def landscape_line_figure(slices: list[dict], _: Translate = untranslated) -> go.Figure:
    """1-D slices: loss against the step along the direction; a NaN or infinite loss is a gap."""
    figure = go.Figure()
    for index, result in enumerate(slices):
        figure.add_trace(go.Scatter(x=result["axis"], y=result["loss"], mode="lines+markers", name=result["label"],
                                    line=dict(color=_colour(index)), connectgaps=False))
    figure.update_layout(height=400, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                         xaxis=dict(title=_("step along a filter-normalised direction (0: the trained weights)")),
                         yaxis=dict(title=_("test loss (log scale)"), type="log"))
    return figure


def landscape_contour_figure(result: dict, log_levels: bool = True, _: Translate = untranslated) -> go.Figure:
    """A 2-D slice as Li et al. draw it: contours of the loss around the trained weights (log10 of the
    loss, so that a steep wall does not hide the basin); gaps stay blank."""
    import math

    z = [[None if value is None else (math.log10(value) if log_levels and value > 0 else value) for value in row]
         for row in result["loss"]]
    figure = go.Figure(go.Contour(x=result["axis"], y=result["axis"], z=z, colorscale="Viridis", ncontours=25,
                                  colorbar=dict(title=_("log10 loss") if log_levels else _("loss")),
                                  hovertemplate=_("a %{{x:.2f}}, b %{{y:.2f}}: log10 loss %{{z:.2f}}"
                                                  "<extra></extra>").format()))
    figure.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="x", color="white", size=10),
                                name=_("trained weights"), showlegend=False))
    figure.update_layout(title=result["label"], height=420, margin=dict(l=10, r=10, t=40, b=10),
                         xaxis=dict(title=_("direction 1")), yaxis=dict(title=_("direction 2"), scaleanchor="x"))
    return figure


def landscape_surface_figure(result: dict, _: Translate = untranslated) -> go.Figure:
    """A 2-D slice as a surface (log10 of the loss), to turn around with the mouse."""
    z = [[None if value is None or value <= 0 else math.log10(value) for value in row] for row in result["loss"]]
    figure = go.Figure(go.Surface(x=result["axis"], y=result["axis"], z=z, colorscale="Viridis", showscale=False))
    figure.update_layout(title=result["label"], height=420, margin=dict(l=0, r=0, t=40, b=0),
                         scene=dict(xaxis_title=_("direction 1"), yaxis_title=_("direction 2"),
                                    zaxis_title=_("log10 loss")))
    return figure
