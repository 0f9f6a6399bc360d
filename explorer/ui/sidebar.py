"""The sidebar every page shares: where the app runs and where the paper is."""

import streamlit as st

from explorer.device import describe_device, resolve_device


@st.cache_resource
def _device_line() -> str:
    device = resolve_device("auto")
    return f"{device.type.upper()}: {describe_device(device)}"


def render_sidebar() -> None:
    with st.sidebar:
        st.caption(f"Running on {_device_line()}")
        st.caption(
            "Paper: He, Zhang, Ren, Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016 "
            "(arXiv:1512.03385)."
        )
