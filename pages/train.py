import streamlit as st

from explorer.train.presets import PRESETS
from explorer.ui.i18n import _, translate
from explorer.ui.jobs import job_manager, latest_group
from explorer.ui.live import live_panel
from explorer.ui.train_form import GROUP_KEY, chosen_device, train_form
from explorer.ui.presets import preset_summary

st.title(_("Train"))
st.caption(_("Train plain and residual nets side by side and watch them learn. Runs go on when you switch pages "
             "and are saved under runs/, where the Runs page finds them."))

auto_device_type = chosen_device("auto")  # where runs train: this machine, or a Ray cluster
# The options' words looked up now, not when the widget formats them (possibly outside this run).
CHOICES = {"quick": _("Quick pair: plain-N vs ResNet-N"),
           **{key: translate(preset.title_on(auto_device_type)) for key, preset in PRESETS.items()},
           "custom": _("Custom")}
choice = st.radio(_("What to train"), list(CHOICES), horizontal=True, format_func=CHOICES.get)
if choice in PRESETS:
    preset_summary(PRESETS[choice], auto_device_type)
train_form(choice, on_gpu=auto_device_type == "cuda")
st.caption(_("Training on **{where}**.").format(where=job_manager().backend.describe_where(chosen_device())))

shown = st.session_state.get(GROUP_KEY) or [str(run.path) for run in latest_group()]
live_panel(shown)
