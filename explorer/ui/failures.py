"""What a class sees when something fails that the app did not foresee: the app's own short message
(what failed, what to do, a reference to find it in the server's log), never Streamlit's red box.

The errors the app expects (bad input, a model too large) are messages of their own
(``feedback.explain_errors``); this is the net under everything else. Streamlit's own control flow
(``st.stop``, ``st.rerun``, ``st.switch_page``) raises BaseException, not Exception, and passes through.
"""

from __future__ import annotations

import functools
import secrets
import time
from contextlib import contextmanager

import streamlit as st
from streamlit.logger import get_logger

from explorer.i18n import N_
from explorer.ui.i18n import _, translate

LOG = get_logger("explorer.app")
# What bench/classroom.py looks for on screen (in English).
UNFORESEEN = N_("something went wrong that the app did not expect")


def failure_message(where: str, error: BaseException, reference: str) -> str:
    """``where``: marked with N_ where it was written (it is translated here), or translated already."""
    return _("{where} failed: {unforeseen} ({error}). Reload the page to try again. If it fails again, tell the "
             "instructor: the server's log has the details under reference {reference}.").format(
        where=translate(where), unforeseen=translate(UNFORESEEN), error=type(error).__name__, reference=reference)


@contextmanager
def failures_shown(where: str, stop: bool = False):
    """Run the block; if it raises, log the traceback with a reference and show the short message
    instead (and end this script run there, with ``stop``). ``where`` ("The playground's nets"):
    marked with N_ where it is written, and translated when the message is shown; a text translated
    already passes unchanged."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - the net under every page: nothing unforeseen reaches the class raw
        reference = f"{time.strftime('%H%M%S')}-{secrets.token_hex(2)}"
        LOG.exception("%s failed (reference %s)", where, reference)
        st.error(failure_message(where, error, reference), icon=":material/error:")
        if stop:
            st.stop()


def shows_failures(where: str):
    """``failures_shown`` for a function: for fragments, whose timed reruns run outside the page's
    script. functools.wraps keeps the name Streamlit derives the fragment's id from. ``where``:
    marked with N_ (the decorator runs at import, outside any session), translated when shown."""
    def decorate(function):
        @functools.wraps(function)
        def guarded(*args, **kwargs):
            with failures_shown(where):
                return function(*args, **kwargs)
        return guarded
    return decorate
