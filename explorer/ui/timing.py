"""The forward-timing form of the Complexity page; results live in this session only."""

from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from explorer.analysis.complexity import time_forward
from explorer.device import environment, resolve_device
from explorer.ui.i18n import _

BATCH_CHOICES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
STATE_KEY = "complexity_timing"


def available_devices(choices: tuple[str, ...], resolve=resolve_device) -> list[str]:
    """The ``choices`` that ``resolve`` accepts (it raises ValueError for the others): this machine's
    devices, or with a backend's ``training_device``, those of where its runs train."""
    available = []
    for choice in choices:
        try:
            resolve(choice)
            available.append(choice)
        except ValueError:
            pass
    return available


def run_timing_form(model_names: list[str], device_choices: tuple[str, ...]) -> dict | None:
    """A form to time forward passes; returns the latest timing of this session, if any."""
    with st.form("timing"):
        models = st.multiselect(_("Models"), model_names, default=["resnet18", "resnet34", "cifar-resnet20", "cifar-resnet56"], placeholder=_("Choose options"))
        columns = st.columns(3)
        batches = columns[0].multiselect(_("Batch sizes"), BATCH_CHOICES, default=[1, 8], placeholder=_("Choose options"))
        device = columns[1].selectbox(_("Device"), available_devices(device_choices))
        repeats = columns[2].slider(_("Timed passes (median)"), 1, 20, 5)
        st.caption(_("On a laptop CPU the big ImageNet models take seconds per pass at large batches: start small."))
        submitted = st.form_submit_button(_("Time on this device"), icon=":material/timer:")
    if submitted:
        if not models or not batches:
            st.error(_("Pick at least one model and one batch size."))
        else:
            st.session_state[STATE_KEY] = _time_models(models, sorted(batches), device, repeats)
    return st.session_state.get(STATE_KEY)


def _time_models(models: list[str], batches: list[int], device: str, repeats: int) -> dict:
    torch_device = resolve_device(device)
    result = {"forward_ms": {}, "warnings": [], "repeats": repeats, "environment": environment(torch_device),
              "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    progress = st.progress(0.0)
    for index, name in enumerate(models):
        progress.progress(index / len(models), text=_("Timing {name} on {device}...").format(
            name=name, device=result["environment"]["device"]))
        try:
            result["forward_ms"][name] = time_forward(name, batches, torch_device, repeats=repeats)
        except ValueError as error:  # too large for this machine at these batch sizes
            result["warnings"].append(_("{name} was not timed: {error}").format(name=name, error=error))
    progress.empty()
    return result
