"""The app's pages, in menu order; Home links to them through the same objects."""

from pathlib import Path

import streamlit as st

from explorer.i18n import N_
from explorer.ui.i18n import translate

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"

# key: (file, title, icon, what the page is for; shown on Home). Titles and summaries are marked
# for the catalog and translated where shown; the page's address comes from its file's name.
PAGE_TABLE = {
    "home": ("home.py", N_("Home"), ":material/home:", N_("What the paper found, and the residual block.")),
    "architecture": ("architecture.py", N_("Architecture"), ":material/account_tree:",
                     N_("Build a plain or residual net at any depth: its diagram, layer table, parameters and MACs.")),
    "train": ("train.py", N_("Train"), ":material/model_training:",
              N_("Train plain and residual nets side by side and watch the degradation problem live.")),
    "runs": ("runs.py", N_("Runs"), ":material/folder_open:",
             N_("Every saved run: overlay curves, compare final numbers, download or delete.")),
    "responses": ("responses.py", N_("Layer responses"), ":material/stacked_line_chart:",
                  N_("Fig. 7: the std of each layer's response, plain against residual.")),
    "gradients": ("gradients.py", N_("Gradient flow"), ":material/trending_down:",
                  N_("The gradient at each block, and how much arrives through the shortcut.")),
    "complexity": ("complexity.py", N_("Complexity"), ":material/speed:",
                   N_("Parameters, multiply-adds and forward time of every model, measured here, beside the paper's "
                      "tables.")),
    "gradcam": ("gradcam.py", "Grad-CAM", ":material/image_search:",
                N_("Upload an image and see where a pretrained ResNet, or a net you trained, finds its evidence.")),
    "lesion": ("lesion.py", N_("Lesion study"), ":material/content_cut:",
               N_("Delete blocks of a trained net at test time: a ResNet shrugs off what sends a plain net to "
                  "chance.")),
    "landscape": ("landscape.py", N_("Loss landscape"), ":material/landscape:",
                  N_("The loss around a trained net's weights, plain against residual, along random directions.")),
    "playground": ("playground.py", N_("Playground"), ":material/scatter_plot:",
                   N_("Plain against residual deep nets on 2-D points, trained live in seconds on a CPU.")),
    "concepts": ("concepts.py", N_("Concepts"), ":material/school:",
                 N_("The residual block drawn and explained: shortcuts, options A, B, C, the bottleneck, Ng's "
                    "notation.")),
}


def _page(key: str) -> st.Page:
    file, title, icon, _summary = PAGE_TABLE[key]
    return st.Page(PAGES_DIR / file, title=translate(title), icon=icon, default=(key == "home"))


def app_pages() -> dict:
    """New st.Page objects, for this script run alone.

    Never cached for the server: a page object holds per-run state (st.navigation marks the page it
    returns as callable, and .run() clears the mark), so two sessions whose script runs overlap on
    one shared object take the mark from each other, and one of them fails with "This page cannot be
    called directly" (1 switch in 90 in a class of 6). Links need no shared object either: Streamlit
    finds a page by its script hash, which comes from its address (the file's name)."""
    return {key: _page(key) for key in PAGE_TABLE}


def page_link(key: str) -> None:
    """A link to a page with the sentence that says what it is for."""
    _file, title, icon, summary = PAGE_TABLE[key]
    st.page_link(_page(key), label=f"**{translate(title)}**: {translate(summary)}", icon=icon)
