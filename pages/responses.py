import streamlit as st

from explorer.analysis.runs import converged_responses, response_summary, responses_reading, weights_at
from explorer.figures import responses_figure
from explorer.ui.analysis import analyse
from explorer.ui.converged import pick_converged
from explorer.ui.i18n import _
from explorer.ui.jobs import latest_group, pick_runs

st.title(_("Layer responses (Fig. 7)"))
st.markdown(_(
    "The paper's Fig. 7 plots the standard deviation of each 3x3 layer's output, after its BN and before the "
    "ReLU or the addition, on held-out images. Its reading: **ResNets have generally smaller responses than "
    "their plain counterparts**, which supports the idea that residual functions are generally closer to zero "
    "than non-residual ones, and deeper ResNets have smaller responses still: each layer modifies the signal less."
))
records = [r for r in pick_runs("responses-runs", default=latest_group(), with_probes=True) if r.responses]
converged = pick_converged("responses-converged", (20, 56, 110), (20, 56, 110))
measured = [converged_responses(task.result, _=_) for task in analyse(
    "responses", converged, {"images": 500, "device": "auto"}, "responses-asked",
    _("Measure the converged nets' responses (seconds each)"))] if converged else []
if not records and not measured:
    st.info(_("No layer responses recorded yet: train a run (the Fig. 7 preset records them every 10 steps), or pick "
              "a converged net above."))
    st.stop()
steps = sorted({step for r in records for step in r.probe_steps})
follow = st.toggle(_("Follow the latest step"), value=True) if steps else True
step = None if not steps else steps[-1] if follow or len(steps) < 2 else st.select_slider(_("Step"), steps,
                                                                                          value=steps[-1])
if records:
    st.caption(weights_at(records, step, _=_))
records = measured + records

left, right = st.columns(2)
left.subheader(_("In network order"))
left.plotly_chart(responses_figure(records, step, _=_), width="stretch")
right.subheader(_("Sorted by magnitude"))
right.plotly_chart(responses_figure(records, step, sort=True, _=_), width="stretch")
summary = response_summary(records, step, _=_)
st.dataframe(summary, hide_index=True, width="stretch", column_order=["run", "at", "layers", "mean_std"],
             column_config={"run": _("run"), "at": _("at"), "layers": _("layers"),
                            "mean_std": st.column_config.NumberColumn(_("mean std"), format="%.3f")})
st.subheader(_("What our measurement says"))
for line in responses_reading(summary, _=_) or [_("Pick a plain and a residual net of one depth, or ResNets of two "
                                                  "depths, to compare their responses.")]:
    st.markdown(f"- {line}")
st.caption(_("Runs trained here: measured on a fixed batch of test images in eval mode at each probe step; early in "
             "training the responses are those of nets that have barely learned. Converged nets: on their first 500 "
             "CIFAR-10 test images at their final weights, as in the paper's figure."))
