"""Turning library errors into messages a class can read, never a traceback."""

from contextlib import contextmanager

import streamlit as st

from explorer.ui.i18n import translate


@contextmanager
def explain_errors(what: str):
    """Show a ValueError (bad input, a model too large) as a clear message and stop this run.
    ``what``: translated by the caller, or marked with N_ (translated here)."""
    try:
        yield
    except ValueError as error:
        st.error(f"{translate(what)}: {error}", icon=":material/error:")
        st.stop()
