"""Work the server starts once, in the background, so that pages open without waiting."""

import ast
import atexit
import importlib
import threading
from pathlib import Path

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
        # The pages' imports first: a page's first visit since the server started otherwise imports
        # them in its script run. Measured in a class of 10 on 2 cores: the first click to Runs
        # waited 4.9-6.4 s on the server for pandas and pyarrow. Then the runs (seconds for long ones;
        # the Runs and Train pages read them), then the models.
        warm_imports()
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


PAGES = Path(__file__).resolve().parents[2] / "pages"


def page_imports(pages: Path = PAGES) -> list[str]:
    """The modules the page scripts import, in the order first seen."""
    names: dict[str, None] = {}
    for page in sorted(pages.glob("*.py")):
        for node in ast.parse(page.read_text()).body:
            if isinstance(node, ast.Import):
                names.update((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names[node.module] = None
    return list(names)


def warm_imports(pages: Path = PAGES) -> None:
    """Import what the pages import (and what Streamlit draws their tables with), once, here."""
    try:
        names = page_imports(pages)
    except (OSError, SyntaxError):  # a page being edited: its visit will say what is wrong
        names = []
    for name in [*names, "pyarrow"]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the page says what is missing when it is opened; the warm-up goes on
            pass
