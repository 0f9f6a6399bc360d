"""Caches of read-only measurements shared by every session of the server."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.complexity import Complexity, measure


@st.cache_data(show_spinner=False, max_entries=512)
def cached_measure(name: str, **options) -> Complexity:
    # A pure function of the name and options: tracing the deep nets takes seconds, so every
    # session shares one result per model.
    return measure(name, **options)


def measure_all(names: list[str], label: str) -> list[Complexity]:
    """Measure each model (cached), with a progress bar the first time."""
    progress = st.progress(0.0, text=label)
    results = []
    for index, name in enumerate(names):
        progress.progress(index / len(names), text=f"{label} {name}")
        results.append(cached_measure(name))
    progress.empty()
    return results
