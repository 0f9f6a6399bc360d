"""The published converged CIFAR-10 ResNets on the analysis pages: which of them, on which test images.

The test set is chosen once per session (CIFAR-10, downloaded on first use, or a folder of its
images) and kept across pages. A net whose weights or test images cannot be had here (offline) is
said in one line, and the page goes on with the runs trained here.
"""

from __future__ import annotations

import time

import streamlit as st

from explorer.analysis.runs import RunRecords, read_run
from explorer.data.base import CIFAR10, FOLDER_PREFIX
from explorer.i18n import N_
from explorer.models.published import PUBLISHED, published_net
from explorer.train.pretrained import available_here, check_available, pretrained_run
from explorer.ui.i18n import _, translate

TEST_SET_KEY = "converged_test_set"
REFUSED_KEY = "converged_refused"  # (spec, test set) -> (time.monotonic(), why), this session's
REFUSAL_SECONDS = 60.0
FOLDER_KEY = "converged_folder"
NO_PLAIN = N_("No converged plain net of the paper's design is published, so the plain nets here are runs trained on "
              "this machine, far from convergence: compare their errors, shown beside, before comparing anything else.")


def converged_name(spec: str) -> str:
    net = published_net(spec)
    return _("ResNet-{depth} (published, {error:.2%} error)").format(depth=net.depth, error=net.published_error)


def test_set(key: str) -> tuple[str, bool]:
    """The session's test set for the converged nets: (dataset, whether one is named). Kept across
    pages: a page's widgets are forgotten when another page is opened, so the choice is kept apart."""
    state = st.session_state
    kinds = ["CIFAR-10", N_("A folder of CIFAR-10 images")]
    with st.expander(_("Test images for the converged nets"), expanded=False):
        kind = st.radio(_("Test images"), kinds, index=kinds.index(state.get(TEST_SET_KEY, kinds[0])), horizontal=True,
                        key=f"{key}-test-set", format_func=translate,
                        help=_("CIFAR-10's test set is downloaded on first use (about 170 MB). Offline, name a folder "
                               "holding train/ and test/ with one subfolder per CIFAR-10 class."))
        folder = ""
        if kind != kinds[0]:
            folder = st.text_input(_("Folder (with train/ and test/)"), value=state.get(FOLDER_KEY, ""),
                                   key=f"{key}-folder", placeholder="/data/cifar10-png").strip()
    state[TEST_SET_KEY], state[FOLDER_KEY] = kind, folder or state.get(FOLDER_KEY, "")
    if kind == kinds[0]:
        return CIFAR10, True
    if not folder:
        st.caption(_("Name the folder of CIFAR-10 images (under Test images for the converged nets) to use the "
                     "converged nets."))
        return "", False
    return FOLDER_PREFIX + folder, True


def pick_converged(key: str, depths: tuple[int, ...], default: tuple[int, ...], beside_plain: bool = True
                   ) -> list[RunRecords]:
    """A multiselect of the published nets of ``depths``; the records of those that can be had here
    (each made into a run folder once), and one line for each that cannot. Those of ``default``
    are picked at first where their weights and test images are on this machine already.
    ``beside_plain``: the page compares them with plain nets, and says that none is published converged."""
    specs = [PUBLISHED[depth].spec for depth in depths]
    dataset, ready = test_set(key)
    here = [PUBLISHED[depth].spec for depth in default if ready and available_here(PUBLISHED[depth].spec, dataset)]
    chosen = st.multiselect(_("Converged nets (published weights, trained on CIFAR-10 to convergence)"), specs,
                            default=here, format_func=converged_name, key=key,
                            help=_("Downloaded on first use into the torch hub cache; their test images are "
                                   "CIFAR-10's (see Test images for the converged nets)."), placeholder=_("Choose options"))
    if not chosen or not ready:
        return []
    records = []
    refused = st.session_state.setdefault(REFUSED_KEY, {})
    for spec in chosen:
        try:
            # Offline, asking the network again takes seconds: a refusal stands for a minute in this session.
            when, message = refused.get((spec, dataset), (0.0, ""))
            if time.monotonic() - when < REFUSAL_SECONDS:
                raise ValueError(message)
            try:
                check_available(spec, dataset)
            except ValueError as error:
                refused[(spec, dataset)] = (time.monotonic(), str(error))
                raise
            with st.spinner(_("Loading {name}").format(name=converged_name(spec))):
                records.append(read_run(str(pretrained_run(spec, dataset))))
        except ValueError as error:
            st.warning(_("{name} is not available here: {error}.").format(
                name=converged_name(spec), error=error), icon=":material/cloud_off:")
    if records and beside_plain:
        st.caption(translate(NO_PLAIN))
    return records
