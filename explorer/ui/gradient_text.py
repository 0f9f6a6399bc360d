"""What the gradient measurements say, in words computed from them, beside what the paper argued."""

import streamlit as st

from explorer.ui.i18n import _


def explain_gradients(summaries: list[dict]) -> None:
    st.markdown(_(
        "**What the paper argues (section 4.1).** The plain nets are trained with BatchNorm, which keeps forward "
        "signals at non-zero variance, and the authors verified that the backward gradients have healthy norms; "
        "so the degradation of deep plain nets is *unlikely to be caused by vanishing gradients*. They conjecture "
        "that deep plain nets have exponentially low convergence rates instead."
    ))
    if not summaries:
        return
    lines = []
    for summary in summaries:
        ratio = summary["first_over_last"]
        verdict = (_("smaller at the first block than at the last") if ratio < 0.5 else
                   _("about as large at the first block as at the last") if ratio <= 2 else
                   _("larger at the first block than at the last"))
        line = _("- **{run}** (step {step}): the gradient is {verdict} ({first:.3g} vs {last:.3g}, "
                 "ratio {ratio:.2g}).").format(run=summary["run"], step=summary["step"], verdict=verdict,
                                               first=summary["first"], last=summary["last"], ratio=ratio)
        if summary["shortcut_over_branch"] is not None:
            line += _(" At a block's input, the gradient through the shortcut has a median {ratio:.2g} "
                      "times the norm of the gradient through the residual branch.").format(
                ratio=summary["shortcut_over_branch"])
        lines.append(line)
    st.markdown(_("**What our measurements say.**") + "\n" + "\n".join(lines))
    st.caption(_("A vanishing gradient would show as a first-block norm many orders of magnitude below the last. "
                 "The shortcut's and the branch's parts are vectors whose norms do not add up to the total's, so "
                 "they are compared as a ratio. Read these numbers, not the paper's claim: they are this run's, at "
                 "this step."))
