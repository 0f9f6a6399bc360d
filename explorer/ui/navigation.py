"""The app's pages, in menu order; Home links to them through the same objects."""

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent.parent / "pages"

# key: (file, title, icon, what the page is for; shown on Home)
PAGE_TABLE = {
    "home": ("home.py", "Home", ":material/home:", "What the paper found, and the residual block."),
    "architecture": ("architecture.py", "Architecture", ":material/account_tree:",
                     "Build a plain or residual net at any depth: its diagram, layer table, parameters and MACs."),
    "train": ("train.py", "Train", ":material/model_training:",
              "Train plain and residual nets side by side and watch the degradation problem live."),
    "runs": ("runs.py", "Runs", ":material/folder_open:",
             "Every saved run: overlay curves, compare final numbers, download or delete."),
    "responses": ("responses.py", "Layer responses", ":material/stacked_line_chart:",
                  "Fig. 7: the std of each layer's response, plain against residual."),
    "gradients": ("gradients.py", "Gradient flow", ":material/trending_down:",
                  "The gradient at each block, and how much arrives through the shortcut."),
    "complexity": ("complexity.py", "Complexity", ":material/speed:",
                   "Parameters, multiply-adds and forward time of every model, measured here, beside the paper's tables."),
    "gradcam": ("gradcam.py", "Grad-CAM", ":material/image_search:",
                "Upload an image and see where a pretrained ResNet, or a net you trained, finds its evidence."),
    "lesion": ("lesion.py", "Lesion study", ":material/content_cut:",
               "Delete blocks of a trained net at test time: a ResNet shrugs off what sends a plain net to chance."),
    "landscape": ("landscape.py", "Loss landscape", ":material/landscape:",
                  "The loss around a trained net's weights, plain against residual, along random directions."),
    "playground": ("playground.py", "Playground", ":material/scatter_plot:",
                   "Plain against residual deep nets on 2-D points, trained live in seconds on a CPU."),
    "concepts": ("concepts.py", "Concepts", ":material/school:",
                 "The residual block drawn and explained: shortcuts, options A, B, C, the bottleneck, Ng's notation."),
}


@st.cache_resource
def _pages() -> dict:
    # One st.Page per file for the life of the server, so that links compare equal across reruns.
    return {
        key: st.Page(PAGES_DIR / file, title=title, icon=icon, default=(key == "home"))
        for key, (file, title, icon, _) in PAGE_TABLE.items()
    }


def app_pages() -> dict:
    return _pages()


def page_link(key: str) -> None:
    """A link to a page with the sentence that says what it is for."""
    _, title, icon, summary = PAGE_TABLE[key]
    st.page_link(app_pages()[key], label=f"**{title}**: {summary}", icon=icon)
