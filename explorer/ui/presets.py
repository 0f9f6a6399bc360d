"""A preset in two lines, with its schedule and what we measured one click away."""

from __future__ import annotations

import streamlit as st

from explorer.train.presets import Preset


def preset_summary(preset: Preset, device_type: str) -> None:
    """What the preset shows and what it cannot, one line each; the schedule, the reasons and the
    measured figures (bench/presets.py's record) in an expander."""
    st.info(f"**Shows:** {preset.shows}  \n**Cannot show:** {preset.cannot}", icon=":material/science:")
    with st.expander("Details: the schedule, and what it showed when we measured it"):
        st.markdown(f"It runs {preset.describe(device_type)}")
        st.markdown(preset.details)
        measured = preset.measured_on_cpu() if device_type != "cuda" else None
        if measured:
            st.markdown(measured)
