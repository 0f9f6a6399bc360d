import streamlit as st

from explorer.analysis.concepts import residual_block_dot
from explorer.ui.i18n import _, language
from explorer.ui.lesson import lesson_plan
from explorer.ui.navigation import page_link

st.title("ResNet Explorer")
st.markdown(_(
    "An interactive companion to **Deep Residual Learning for Image Recognition** "
    "(He, Zhang, Ren and Sun, 2015). Its question: why does a deeper plain network train *worse* "
    "than a shallower one, when the deeper one could copy the shallower one and set its extra layers "
    "to identities? This is the **degradation problem**, and it is not overfitting: the training error "
    "itself goes up (the paper's Fig. 1 and Fig. 6)."
))

left, right = st.columns([3, 2])
with left:
    st.subheader(_("The residual block"))
    st.markdown(_(
        "Instead of asking a few stacked layers to fit the mapping $H(x)$ directly, a residual block asks "
        "them to fit the *residual* $F(x) = H(x) - x$ and adds the input back through a shortcut:"
    ))
    st.latex(r"y = F(x, \{W_i\}) + x \qquad\text{so}\qquad H(x) = F(x) + x")
    st.markdown(_(
        "If the best thing a block can do is nothing, its layers only need to drive $F(x)$ to zero, which "
        "is easy, instead of learning an identity through a stack of nonlinear layers, which is hard. "
        "The shortcut adds no parameters and no computation (beyond an addition) when the shapes match. "
        "When the width doubles, option **A** pads the new channels with zeros, option **B** projects "
        "with a 1x1 convolution there, and option **C** projects on every block."
    ))
with right:
    st.graphviz_chart(residual_block_dot(_=_))
    st.caption(_("Fig. 2 of the paper: a building block of residual learning."))

st.subheader(_("Explore"))
page_link("architecture")
page_link("train")
page_link("runs")
page_link("responses")
page_link("gradients")
page_link("complexity")
page_link("gradcam")
page_link("lesion")
page_link("landscape")
page_link("playground")
page_link("concepts")

with st.expander(_("For instructors: a 50-minute lesson plan with this app"), icon=":material/school:"):
    st.markdown(lesson_plan(language()))
