import streamlit as st

from explorer.train.presets import PRESETS
from explorer.ui.jobs import job_manager, latest_group
from explorer.ui.live import live_panel
from explorer.ui.train_form import GROUP_KEY, chosen_device, train_form
from explorer.ui.presets import preset_summary

st.title("Train")
st.caption("Train plain and residual nets side by side and watch them learn. Runs go on when you switch pages "
           "and are saved under runs/, where the Runs page finds them.")

auto_device_type = chosen_device("auto")  # where runs train: this machine, or a Ray cluster
choice = st.radio("What to train", ["quick", *PRESETS, "custom"], horizontal=True,
                  format_func=lambda key: {"quick": "Quick pair: plain-N vs ResNet-N", "custom": "Custom"}.get(
                      key, PRESETS[key].title_on(auto_device_type) if key in PRESETS else key))
if choice in PRESETS:
    preset_summary(PRESETS[choice], auto_device_type)
train_form(choice, on_gpu=auto_device_type == "cuda")
st.caption(f"Training on **{job_manager().backend.describe_where(chosen_device())}**.")

shown = st.session_state.get(GROUP_KEY) or [str(run.path) for run in latest_group()]
live_panel(shown)
