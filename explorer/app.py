"""The Streamlit entry point: ``streamlit run explorer/app.py``.

One navigation over the pages in ``pages/`` and the sidebar every page shares.
"""

import sys
from pathlib import Path

# `streamlit run explorer/app.py` puts explorer/ on sys.path, not the repository root, so the
# `explorer` package would not import without this.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from explorer.ui.failures import failures_shown  # noqa: E402
from explorer.i18n import N_  # noqa: E402
from explorer.ui.i18n import _, choose_language  # noqa: E402
from explorer.ui.jobs import warm_workers  # noqa: E402
from explorer.ui.navigation import app_pages  # noqa: E402
from explorer.ui.rerun_requests import keep_the_page_a_click_asked_for  # noqa: E402
from explorer.ui.sidebar import render_sidebar  # noqa: E402
from explorer.ui.warmup import start_background_warmup  # noqa: E402

# The favicon is a file of ours, served by this server: a Material icon there would make every
# browser ask an internet font server for it (offline it fails, and it tells that server who opened the app).
st.set_page_config(page_title="ResNet Explorer", page_icon=str(ROOT / "assets" / "favicon.png"), layout="wide")
with failures_shown(N_("The app"), stop=True):
    keep_the_page_a_click_asked_for()  # before any session's second request is folded
    choose_language()  # before any text: every page and the sidebar speak this session's language
    start_background_warmup()
    warm_workers()
    navigation = st.navigation(list(app_pages().values()))  # new page objects for this run: they hold its state
    render_sidebar()
with failures_shown(_("The {title} page").format(title=navigation.title)):  # the title is translated already
    navigation.run()
