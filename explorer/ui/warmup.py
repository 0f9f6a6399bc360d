"""Work the server starts once, in the background, so that pages open without waiting."""

import atexit
import threading

import streamlit as st

from explorer.analysis.complexity import warm_cache
from explorer.analysis.runs import warm_runs
from explorer.train.store import DEFAULT_RUNS_DIR


@st.cache_resource
def start_background_warmup() -> threading.Thread:
    # Tracing the paper's deep models takes ~15 s on 2 cores; doing it while the class reads the
    # Home page makes the Complexity page instant. The thread never calls st.*.
    stop = threading.Event()

    def warm() -> None:
        # The runs first (seconds for long ones; the Runs and Train pages read them), then the models.
        warm_runs(DEFAULT_RUNS_DIR, stop=stop)
        warm_cache(stop=stop)

    thread = threading.Thread(target=warm, name="background-warmup", daemon=True)
    thread.start()

    def finish() -> None:
        # A thread killed inside torch at interpreter exit aborts the process: let it end first.
        stop.set()
        thread.join(timeout=120)

    atexit.register(finish)
    return thread
