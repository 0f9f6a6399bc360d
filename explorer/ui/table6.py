"""Table 6, live: the published converged CIFAR-10 ResNets' test error measured here, beside the
paper's and the weights' own published figure. Evaluated as jobs (off the page), cached per net."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.evaluate import evaluation_reading
from explorer.models.published import PUBLISHED
from explorer.ui.analysis import analyse
from explorer.ui.converged import pick_converged
from explorer.ui.i18n import _


def table6_live() -> None:
    st.subheader(_("Table 6, live: the converged nets' test error, measured here"))
    st.caption(_("The paper's nets trained to convergence on CIFAR-10 (published weights by Y. Idelbayev, option-A "
                 "shortcuts as here), evaluated on this machine on CIFAR-10's test images."))
    records = pick_converged("table6-converged", depths=tuple(PUBLISHED), default=(20, 56), beside_plain=False)
    if not records:
        return
    images = st.number_input(_("Test images (CIFAR-10 has 10,000)"), 100, 10_000, 1_000, step=100, key="table6-images",
                             help=_("The first N of the test set. On 2 CPU cores, 1,000 images take a few seconds "
                                    "for ResNet-20 and about half a minute for ResNet-110."))
    results = [task.result for task in analyse("evaluate", records, {"images": int(images), "device": "auto"},
                                               "table6-asked", _("Evaluate the converged nets"))]
    if not results:
        return
    st.dataframe([{"net": result["model"], "images": result["images"],
                   "test error % (measured here)": round(100 * result["error"], 2),
                   "published %": round(100 * result["published_error"], 2),
                   "paper %": round(100 * result["paper_error"], 2), "seconds": round(result["seconds"], 1)}
                  for result in results], hide_index=True,
                 column_config={"net": _("net"), "images": _("images"),
                                "test error % (measured here)": _("test error % (measured here)"),
                                "published %": _("published %"), "paper %": _("paper %"),
                                "seconds": _("seconds")})
    for line in evaluation_reading(results, _=_):
        st.markdown(f"- {line}")
