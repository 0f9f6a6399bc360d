"""Turning library errors into messages a class can read, never a traceback."""

from contextlib import contextmanager

import streamlit as st


@contextmanager
def explain_errors(what: str):
    """Show a ValueError (bad input, a model too large) as a clear message and stop this run."""
    try:
        yield
    except ValueError as error:
        st.error(f"{what}: {error}", icon=":material/error:")
        st.stop()
