"""Work the server starts once, in the background, so that pages open without waiting."""

import atexit
import threading

import streamlit as st

from explorer.analysis.complexity import warm_cache


@st.cache_resource
def start_background_warmup() -> threading.Thread:
    # Tracing the paper's deep models takes ~15 s on 2 cores; doing it while the class reads the
    # Home page makes the Complexity page instant. The thread never calls st.*.
    stop = threading.Event()
    thread = threading.Thread(target=warm_cache, kwargs={"stop": stop}, name="complexity-warmup", daemon=True)
    thread.start()

    def finish() -> None:
        # A thread killed inside torch at interpreter exit aborts the process: let it end first.
        stop.set()
        thread.join(timeout=120)

    atexit.register(finish)
    return thread
