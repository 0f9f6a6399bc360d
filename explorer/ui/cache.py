"""Measurements shared by every session: the library caches them (see complexity.profile_named)."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.complexity import Complexity, measure


def measure_all(names: list[str], label: str) -> list[Complexity]:
    """Measure each model, with a progress bar while any is still being traced."""
    progress = st.progress(0.0, text=label)
    results = []
    for index, name in enumerate(names):
        progress.progress(index / len(names), text=f"{label} {name}")
        results.append(measure(name))
    progress.empty()
    return results
