import streamlit as st

from explorer.analysis.concepts import (
    bottleneck_dot,
    fig5_weights,
    ng_block_dot,
    plain_block_dot,
    residual_block_dot,
    shortcut_option_dot,
    shortcut_weights,
)
from explorer.ui.i18n import _
from explorer.ui.navigation import page_link

st.title(_("Concepts"))
st.caption(_("The residual block of He et al. (2015), drawn and explained; then the same idea in the notation of "
           "Andrew Ng's deep-learning course. Try each idea on the Playground."))

st.header(_("The residual block: H(x) = F(x) + x"))
left, middle, right = st.columns([2, 1, 1])
with left:
    st.markdown(_(
        "Let $H(x)$ be the mapping a few stacked layers should compute. A **plain** block asks its layers to "
        "compute $H(x)$ directly. A **residual** block asks them for the *difference* "
        "$F(x) = H(x) - x$ and adds the input back through a **shortcut** that skips the layers:"
    ))
    st.latex(r"y = F(x, \{W_i\}) + x, \qquad F = W_2\,\sigma(W_1 x)")
    st.markdown(_("so the block computes $H(x) = F(x) + x$, where $\\sigma$ is the ReLU."))
    st.markdown(_(
        "The shortcut is the identity: no parameters, and no computation beyond one addition. A plain net and "
        "its residual twin have the same layers and the same weights; only the shortcuts differ (section 3.2)."
    ))
with middle:
    st.graphviz_chart(plain_block_dot(_=_))
    st.caption(_("Plain block"))
with right:
    st.graphviz_chart(residual_block_dot(_=_))
    st.caption(_("Residual block (Fig. 2)"))

st.subheader(_("Why learning F(x) = 0 is easy"))
st.markdown(_(
    "Take a shallow net that works and stack more layers on it. The deeper net can be at least as good: the new "
    "layers only have to be **identities**. Yet deeper plain nets train *worse* (Fig. 1): the solver does not "
    "find that solution. For a plain block the identity is a precise target: its weight layers and ReLUs must "
    "together reproduce $x$ exactly. For a residual block the identity is $F(x) = 0$: all weights of the "
    "branch at **zero**, a point that small initial weights start near and that weight decay pulls towards. "
    "If the best mapping is *close* to the identity, the block only learns a small correction."
))
st.markdown(_("The shortcut also carries the gradient back unchanged. Differentiating $y = F(x) + x$:"))
st.latex(r"\frac{\partial\,\mathrm{loss}}{\partial x} = \frac{\partial\,\mathrm{loss}}{\partial y}"
         r"\left(\frac{\partial F}{\partial x} + I\right)")
st.markdown(_(
    "so however small $\\partial F/\\partial x$ is, the identity term passes the gradient to the layers below "
    "(an argument worked out in He et al.'s follow-up, *Identity Mappings in Deep Residual Networks*, 2016). The "
    "Playground's gradient chart shows it layer by layer."
))

st.header(_("In Andrew Ng's notation: a[l+2] = g(z[l+2] + a[l])"))
st.graphviz_chart(ng_block_dot(_=_))
st.latex(r"z^{[l+1]} = W^{[l+1]} a^{[l]} + b^{[l+1]}, \qquad a^{[l+1]} = g\!\left(z^{[l+1]}\right)")
st.latex(r"z^{[l+2]} = W^{[l+2]} a^{[l+1]} + b^{[l+2]}, \qquad a^{[l+2]} = g\!\left(z^{[l+2]} + a^{[l]}\right)")
st.markdown(_(
    "The activation $a^{[l]}$ takes a **short cut** (a skip connection) past two layers and is added *before* "
    "the second nonlinearity $g$. If $W^{[l+2]} = 0$ and $b^{[l+2]} = 0$, then $a^{[l+2]} = g(a^{[l]}) = a^{[l]}$, "
    "because $a^{[l]}$ came out of a ReLU and is never negative: the block is the identity, which is why adding "
    "it does not hurt. When $z^{[l+2]}$ and $a^{[l]}$ differ in size, a matrix $W_s$ maps $a^{[l]}$ to the right "
    "size: $a^{[l+2]} = g(z^{[l+2]} + W_s a^{[l]})$, the projection of options B and C below.\n\n"
    "The Playground's residual MLPs use the shortest skip, around every single layer: "
    "$a^{[l+1]} = g(z^{[l+1]} + a^{[l]})$. Their layers all have the same width, so the shortcut is always the "
    "identity."
))

st.header(_("When the dimensions change: options A, B and C"))
st.markdown(_(
    "Where a stage begins, the net halves the feature map (stride 2) and doubles the channels, so $x$ no longer "
    "has the shape of $F(x)$. Section 3.3 of the paper gives three shortcuts:\n"
    "- **A**: still the identity: subsample $x$ and pad the new channels with **zeros**. No parameters "
    "(the paper's CIFAR-10 nets).\n"
    "- **B**: a **projection** $W_s x$ (1x1 convolution, stride 2) where the dimensions change, the identity "
    "everywhere else (the paper's ImageNet nets).\n"
    "- **C**: a projection on **every** shortcut.\n\n"
    "On ImageNet (Table 3) all three beat the plain net by a wide margin; B is slightly better than A (the "
    "zero-padded channels learn no residual) and C marginally better than B (more parameters). The paper "
    "concludes projections are not essential against degradation, and keeps identity shortcuts where it can."
))
counts = shortcut_weights(64, 128)
columns = st.columns(3)
for column, option in zip(columns, ("A", "B", "C")):
    with column:
        st.markdown(_("**Option {option}**").format(option=option))
        st.graphviz_chart(shortcut_option_dot(option, _=_))
        st.caption(_("Shortcut weights: {grows:,} on the block that doubles the width, "
                     "{same:,} on each block that keeps it.").format(grows=counts[option]["grows"],
                                                                     same=counts[option]["same"]))

st.header(_("The bottleneck block"))
left, right = st.columns([2, 1])
weights = fig5_weights()
with left:
    st.markdown(_(
        "For ResNet-50, 101 and 152 the paper replaces the two 3x3 convolutions by three layers (Fig. 5): a **1x1** "
        "convolution that *reduces* 256 channels to 64, a **3x3** on the 64, and a **1x1** that *restores* 256. "
        "The expensive 3x3 works on a quarter of the channels, so a block on 256 channels costs about what a basic "
        "block on 64 does: **{bottleneck:,}** weights against **{basic:,}** (counted from "
        "the blocks this app builds; BatchNorm not included)."
    ).format(bottleneck=weights["bottleneck"], basic=weights["basic"]))
    st.markdown(_(
        "The shortcut joins the two 256-channel ends. A projection there would double the block's cost, which is "
        "why identity shortcuts matter most for bottleneck nets."
    ))
with right:
    st.graphviz_chart(bottleneck_dot(_=_))
    st.caption(_("Bottleneck block (Fig. 5, right)"))

st.subheader(_("Why residual nets train"))
st.markdown(_(
    "Two later papers looked inside trained ResNets. **Veit, Wilber and Belongie** (NeurIPS 2016) deleted single "
    "blocks at test time: a ResNet's error barely moved, while removing a layer of a plain net sent it to chance. "
    "They read a ResNet as an ensemble of many paths of different lengths, no one of them essential. **Li, Xu, "
    "Taylor, Studer and Goldstein** (NeurIPS 2018) drew the loss around trained weights: with shortcuts the surface "
    "is smooth and nearly convex, without them (at depth 56 and 110) it is chaotic. Run both on the nets you "
    "trained here:"
))
page_link("lesion")
page_link("landscape")

st.subheader(_("Try it"))
page_link("playground")
page_link("architecture")
