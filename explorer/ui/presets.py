"""A preset in two lines, with its schedule and what we measured one click away."""

from __future__ import annotations

import streamlit as st

from explorer.train.presets import Preset
from explorer.ui.i18n import _, translate


def preset_summary(preset: Preset, device_type: str) -> None:
    """What the preset shows and what it cannot, one line each; the schedule, the reasons and the
    measured figures (bench/presets.py's record) in an expander."""
    dataset = st.session_state.get("train_dataset")  # the form's data set, once it has been started with
    shows, cannot = preset.lines(device_type, dataset)  # only what the record for this data bears out
    st.info(_("**Shows:** {shows}  \n**Cannot show:** {cannot}").format(
        shows=translate(shows), cannot=translate(cannot)), icon=":material/science:")
    with st.expander(_("Details: the schedule, and what it showed when we measured it")):
        st.markdown(_("It runs {schedule}").format(schedule=preset.describe(device_type, dataset, _=_)))
        st.markdown(translate(preset.details))
        measured = preset.measured_on_cpu(dataset, _=_) if device_type != "cuda" else None
        if measured:
            st.markdown(measured)
