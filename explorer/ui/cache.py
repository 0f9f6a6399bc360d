"""Measurements shared by every session: the library caches them (see models/cost.py's profiles)."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.complexity import Complexity, measure, measure_if_ready
from explorer.ui.i18n import _
from explorer.ui.warmup import start_background_warmup


def measure_all(names: list[str], label: str) -> list[Complexity]:
    """Measure each model, with a progress bar while any is still being traced."""
    progress = st.progress(0.0, text=label)
    results = []
    for index, name in enumerate(names):
        progress.progress(index / len(names), text=f"{label} {name}")
        results.append(measure(name))
    progress.empty()
    return results


def measured_so_far(names: list[str]) -> tuple[list[Complexity], list[str]]:
    """The models already measured, and those not yet; the server's background warm-up measures
    the rest (started here if it is not running), so the page never waits for a trace."""
    ready, missing = [], []
    for name in names:
        result = measure_if_ready(name)
        if result is None:
            missing.append(name)
        else:
            ready.append(result)
    if missing and not start_background_warmup().is_alive():
        # The warm-up has ended, yet some are missing (evicted from memory, no disk cache): measure
        # them here, as before, with a progress bar.
        return measure_all(names, _("Measuring")), []
    return ready, missing
