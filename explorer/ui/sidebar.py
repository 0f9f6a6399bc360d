"""The sidebar every page shares: where the app runs and where the paper is."""

import streamlit as st

from explorer.device import describe_device, resolve_device
from explorer.ui.i18n import _, language_switch
from explorer.ui.session import remember, viewer


@st.cache_resource
def _device_line() -> str:
    device = resolve_device("auto")
    return f"{device.type.upper()}: {describe_device(device)}"


def render_sidebar() -> None:
    with st.sidebar:
        language_switch()
        who = viewer()
        st.caption(_("Running on {device}").format(device=_device_line()))
        st.caption(_("You are the instructor: you see and control every run, and the runs you start are shared "
                     "with the class.") if who.instructor else
                   _("Your runs are yours: other students cannot see or stop them, and this browser finds them "
                     "again after a reload."))
        st.caption(
            _("Paper: He, Zhang, Ren, Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016 "
              "(arXiv:1512.03385).")
        )
        remember(who)  # last: its 1-pixel frame sits below everything else
