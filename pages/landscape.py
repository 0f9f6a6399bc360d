import streamlit as st

from explorer.analysis.landscape import landscape_reading
from explorer.analysis.lesion import shown_note
from explorer.device import resolve_device
from explorer.figures import landscape_contour_figure, landscape_line_figure, landscape_surface_figure
from explorer.models import resolve
from explorer.ui.analysis import analyse, pick_trained_runs
from explorer.ui.i18n import _

st.title(_("Loss landscape"))
st.markdown(_(
    "Li, Xu, Taylor, Studer and Goldstein (NeurIPS 2018) drew a trained net's loss along random directions in weight "
    "space, each filter of a direction scaled to the norm of the same filter of the weights (*filter "
    "normalisation*), so that nets can be compared. With shortcuts, ResNet-56's surface is smooth and nearly "
    "convex; the same net without them is chaotic, more so at depth 110. Here: the test loss of the nets you trained, "
    "or of the published converged ones, at `weights + a d1` (1-D) or `weights + a d1 + b d2` (2-D), with the same directions for every net of the same "
    "shape, and BatchNorm's parameters and statistics held fixed, as in the paper."
))
records = pick_trained_runs("landscape-runs", converged=(20, 56, 110), converged_default=(56,))

on_gpu = resolve_device("auto").type == "cuda"
columns = st.columns(5)
dims = columns[0].radio(_("Slice"), [1, 2], format_func=lambda d: f"{d}-D", horizontal=True)
points = columns[1].number_input(_("Points per axis"), 3, 201, 41 if dims == 1 else (25 if on_gpu else 11), step=2,
                                 help=_("Odd, so that the trained weights are a grid point. A 2-D slice evaluates "
                                        "the net points x points times."))
span = columns[2].number_input(_("Span"), 0.1, 5.0, 1.0, step=0.25,
                               help=_("From -span to +span on each axis; the paper plots -1 to 1."))
images = columns[3].number_input(_("Test images"), 100, 10_000, 1_000 if on_gpu else 500, step=100,
                                 help=_("The first N images of each run's own test set (all of it if it has fewer)."))
seed = columns[4].number_input(_("Direction seed"), 0, 1_000_000, 0)
allow_long = st.checkbox(_("Allow a long computation (up to 30 minutes)"),
                         help=_("Before it starts, each net's slice is estimated from one timed evaluation; without "
                                "this, an estimate over 2 minutes is refused."))
options = {"dims": int(dims), "points": int(points), "span": float(span), "images": int(images), "seed": int(seed),
           "device": "auto", "max_seconds": 1800.0 if allow_long else 120.0}
if on_gpu:
    start = _("Compute the slices")
else:
    start = _("Compute the slices (on a CPU: about {seconds} s per net)").format(
        seconds="10" if dims == 1 else "30-45")
results = [task.result for task in analyse("landscape", records, options, "landscape-asked", start,
                                           refusal_hint=" " + _("(or tick Allow a long computation)"))]
if not results:
    st.caption(_("Each net's slice is computed in a worker of its own, off this page: you can switch pages "
                 "meanwhile. A slice made before on the same weights and settings shows at once."))
    st.stop()

if results[0]["dims"] == 1:
    st.plotly_chart(landscape_line_figure(results, _=_), width="stretch")
else:
    by_depth = {}  # plain beside residual, one depth per row: contours, then surfaces
    for result in results:
        spec = resolve(result["model"])
        by_depth.setdefault(spec.fixed.get("depth"), []).append((bool(spec.fixed.get("residual")), result))
    for depth, group in by_depth.items():
        group = [result for _residual, result in sorted(group, key=lambda pair: pair[0])]
        for figure, kind in ((landscape_contour_figure, "contour"), (landscape_surface_figure, "surface")):
            for column, result in zip(st.columns(max(2, len(group))), group):
                column.plotly_chart(figure(result, _=_), width="stretch", key=f"{kind}-{result['run_dir']}")
st.subheader(_("What our measurement says"))
for line in landscape_reading(results, _=_):
    st.markdown(f"- {line}")
st.caption(_(
    "Non-convexity: over every interior grid point and axis, the second difference of the loss; the share of their "
    "total size that is negative. 0 is convex along every axis (a bowl, however steep), about 0.5 is noise. "
    "Each net on {images:,} test images; the centre is its loss at its saved weights."
).format(images=results[0]["images"]))
for result in results:
    for note in result.get("notes", []):
        st.caption(f"{result['label']}: {shown_note(note, _)}")
