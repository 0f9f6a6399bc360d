import streamlit as st

from explorer.analysis.runs import response_summary, weights_at
from explorer.figures import responses_figure
from explorer.ui.jobs import latest_group, pick_runs

st.title("Layer responses (Fig. 7)")
st.markdown(
    "The paper's Fig. 7 plots the standard deviation of each 3x3 layer's output, after its BN and before the "
    "ReLU or the addition, on held-out images. Its reading: **ResNets have generally smaller responses than "
    "their plain counterparts**, which supports the idea that residual functions are generally closer to zero "
    "than non-residual ones, and deeper ResNets have smaller responses still: each layer modifies the signal less."
)
records = pick_runs("responses-runs", default=latest_group(), with_probes=True)
if not records or not any(r.responses for r in records):
    st.info("No layer responses recorded yet: train a run (the Fig. 7 preset records them every 10 steps).")
    st.stop()
steps = sorted({step for r in records for step in r.probe_steps})
follow = st.toggle("Follow the latest step", value=True)
step = steps[-1] if follow or len(steps) < 2 else st.select_slider("Step", steps, value=steps[-1])
st.caption(weights_at(records, step))

left, right = st.columns(2)
left.subheader("In network order")
left.plotly_chart(responses_figure(records, step), width="stretch")
right.subheader("Sorted by magnitude")
right.plotly_chart(responses_figure(records, step, sort=True), width="stretch")
summary = response_summary(records, step)
st.dataframe(summary, hide_index=True, width="stretch",
             column_config={"mean_std": st.column_config.NumberColumn("mean std", format="%.3f")})
st.caption("Measured on a fixed batch of test images in eval mode at each probe step. Early in training the "
           "responses are those of nets that have barely learned: the paper's figure is of trained nets.")
