import streamlit as st

from explorer.ui.i18n import _
from explorer.ui.navigation import page_link
from explorer.ui.playground import current_playground, live_panel, playground_settings

st.title(_("Playground"))
st.caption(_("Plain against residual deep nets on points in the plane, trained live on this machine's CPU: "
             "the TensorFlow Playground with the one thing it lacks, residual connections. Settings are in the "
             "sidebar; both nets start from the same weights and see the same batches."))

settings = playground_settings()
current_playground(settings)
live_panel()

with st.expander(_("What to look for"), icon=":material/visibility:"):
    st.markdown(_(
        "- **Depth 50, no normalisation.** Press Run and watch whether the plain net's boundary moves at all, "
        "and the residual net's. The gradient chart says why: compare the plain net's gradient at its first "
        "layers with its last ones, then the residual net's.\n"
        "- **Depth.** Lower the depth to 5 or 10 and run again: does the plain net learn now?\n"
        "- **BatchNorm** (the paper's setting, every layer normalised): is the plain net still behind? The paper "
        "found deeper plain nets with BatchNorm train *worse* than shallower ones although their gradients do not "
        "vanish: the degradation problem.\n"
        "- **Initial weights.** He initialisation keeps a plain ReLU stack's signal from shrinking at the start. "
        "Does it rescue the plain net? What does it do to the residual one without BatchNorm?\n"
        "- **Test points** (black rim) are never trained on: a boundary that wraps single training points is "
        "overfitting, and the test loss rises while the training loss falls."
    ))
page_link("concepts")
