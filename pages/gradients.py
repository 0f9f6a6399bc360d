import streamlit as st

from explorer.analysis.runs import gradient_summary, weights_at
from explorer.figures import gradient_depth_figure, gradient_heatmap_figure, gradient_split_figure
from explorer.ui.gradient_text import explain_gradients
from explorer.ui.i18n import _
from explorer.ui.jobs import latest_group, pick_runs

st.title(_("Gradient flow"))
st.caption(_("The norm of the loss gradient at each block's input, and how it splits between the shortcut and the "
             "residual branch, recorded during training."))
records = pick_runs("gradient-runs", default=latest_group(), with_probes=True)
if not records or not any(r.gradients for r in records):
    st.info(_("No gradients recorded yet: train a run with probes (every preset records them)."))
    st.stop()
steps = sorted({record["step"] for r in records for record in r.gradients})
follow = st.toggle(_("Follow the latest step"), value=True)
step = steps[-1] if follow or len(steps) < 2 else st.select_slider(_("Step"), steps, value=steps[-1])
st.caption(_("{weights} Each gradient is of one training batch at those weights.").format(
    weights=weights_at(records, step, _=_)))

st.plotly_chart(gradient_depth_figure(records, step, _=_), width="stretch")
summaries = [s for s in (gradient_summary(r, step) for r in records) if s]
explain_gradients(summaries)

st.subheader(_("Step by block"))
for record in records:
    if record.gradients:
        st.plotly_chart(gradient_heatmap_figure(record, _=_), width="stretch")
st.subheader(_("Through the shortcut and through the branch"))
for record in records:
    if record.gradients:
        st.plotly_chart(gradient_split_figure(record, step, _=_), width="stretch")
