import time

import pandas as pd
import streamlit as st

from explorer.analysis.complexity import PAPER_MODELS, comparison_rows
from explorer.device import DEVICE_CHOICES
from explorer.figures import forward_time_figure, macs_vs_params_figure
from explorer.paper import paper_cifar_row
from explorer.ui.cache import measured_so_far
from explorer.ui.i18n import _
from explorer.ui.table6 import table6_live
from explorer.ui.timing import run_timing_form

st.title(_("Complexity"))
st.caption(_(
    "Every number in the 'ours' columns is measured by this app: parameters by counting, multiply-adds "
    "(MACs; the paper calls them FLOPs) with torch.utils.flop_counter on one image at the model's input "
    "size (224x224 for ImageNet models, 32x32 for CIFAR), memory by tracing a forward pass."
))

# The server measures the paper's models in the background from its start (the deepest takes
# seconds to trace); the page shows what is ready and fills in the rest as it comes.
measured, still_measuring = measured_so_far(list(PAPER_MODELS))
if still_measuring:
    st.progress(len(measured) / len(PAPER_MODELS),
                text=_("Measuring the paper's models in the background: {done} of {total} done, {waiting} to "
                       "come. The tables fill in as they finish.").format(
                    done=len(measured), total=len(PAPER_MODELS), waiting=", ".join(still_measuring)))
rows = comparison_rows(measured)
for row in rows:
    paper_row = paper_cifar_row(row["model"])
    row["paper_test_error_percent"] = paper_row["test_error_percent"] if paper_row else None

imagenet_rows = [row for row in rows if row["family"] != "cifar"]
cifar_rows = [row for row in rows if row["family"] == "cifar"]
st.subheader(_("Table 1: ImageNet models at 224x224"))
st.dataframe(
    pd.DataFrame(imagenet_rows, columns=["model", "params", "gmacs", "paper_gmacs", "gmacs_diff",
                                         "gmacs_paper_stride", "gmacs_paper_stride_diff",
                                         "activation_mib_per_image"]),
    column_config={
        "model": _("model"),
        "params": st.column_config.NumberColumn(_("params (ours)"), format="localized"),
        "gmacs": st.column_config.NumberColumn(_("GMACs (ours)"), format="%.3f"),
        "paper_gmacs": st.column_config.NumberColumn(_("GMACs (paper)"), format="%.1f"),
        "gmacs_diff": st.column_config.NumberColumn(_("ours vs paper"), format="percent"),
        "gmacs_paper_stride": st.column_config.NumberColumn(
            _("GMACs, stride as the paper (ours)"), format="%.3f",
            help=_("Measured with each downsampling stride where the paper puts it. Only the bottleneck nets "
                   "(50/101/152) differ from the column before: see the note below.")),
        "gmacs_paper_stride_diff": st.column_config.NumberColumn(_("vs paper"), format="percent"),
        "activation_mib_per_image": st.column_config.NumberColumn(_("activations MiB/image (ours)"), format="%.1f"),
    },
    hide_index=True, width="stretch",
)
st.subheader(_("Table 6: CIFAR-10 ResNets at 32x32"))
st.dataframe(
    pd.DataFrame(cifar_rows, columns=["model", "params", "paper_params", "params_diff", "gmacs",
                                      "activation_mib_per_image", "paper_test_error_percent"])
    .assign(paper_params=lambda frame: frame.paper_params / 1e6),
    column_config={
        "model": _("model"),
        "params": st.column_config.NumberColumn(_("params (ours)"), format="localized"),
        "paper_params": st.column_config.NumberColumn(_("params (paper, millions)"), format="%.2f"),
        "params_diff": st.column_config.NumberColumn(_("ours vs paper"), format="percent"),
        "gmacs": st.column_config.NumberColumn(_("GMACs (ours)"), format="%.3f"),
        "activation_mib_per_image": st.column_config.NumberColumn(_("activations MiB/image (ours)"), format="%.1f"),
        "paper_test_error_percent": st.column_config.NumberColumn(
            _("test error % (paper)"), format="%.2f", help=_("Table 6; these nets are not trained on this page.")),
    },
    hide_index=True, width="stretch",
)
st.caption(_("Differences in parameters are the paper's rounding (0.27M for 269,722). The paper gives no MACs "
             "for the CIFAR nets. The converged nets' test errors measured here: *Table 6, live*, at the end of this "
             "page."))

resnet50 = next((row for row in rows if row["model"] == "resnet50"), None)
if resnet50 is not None:
    st.info(
        _("**Why ResNet-50 measures {gmacs:.2f} GMACs, not the paper's 3.8.** Our default ResNet-50 puts "
          "each downsampling stride on the bottleneck's 3x3 convolution, as torchvision does, so that torchvision's "
          "pretrained weights compute what they were trained for. The paper puts it on the first 1x1 convolution. "
          "The weights have the same shapes, but with the stride on the 3x3 the first 1x1 of three blocks runs at "
          "4 times as many positions. With the paper's placement we measure {paper_gmacs:.2f} "
          "GMACs ({paper_diff:+.1%} from Table 1); the same holds for ResNet-101 and 152.").format(
            gmacs=resnet50["gmacs"], paper_gmacs=resnet50["gmacs_paper_bottleneck"],
            paper_diff=resnet50["gmacs_paper_bottleneck_diff"]),
        icon=":material/info:",
    )
if rows:
    st.plotly_chart(macs_vs_params_figure(rows, _=_), width="stretch")
    st.caption(_("Multiply-adds against parameters, both measured here; crosses are Table 1's numbers."))

st.subheader(_("Forward time on this machine"))
timing = run_timing_form(list(PAPER_MODELS), DEVICE_CHOICES)
if timing:
    for row in rows:
        for batch, milliseconds in timing["forward_ms"].get(row["model"], {}).items():
            row[f"forward_ms_batch{batch}"] = milliseconds
    timed_rows = [row for row in rows if row["model"] in timing["forward_ms"]]
    st.plotly_chart(forward_time_figure(timed_rows, timing["environment"]["device"], _=_), width="stretch")
    st.caption(_("Median of {repeats} no-grad forward passes after warm-up; torch {torch}, measured {when}.").format(
        repeats=timing["repeats"], torch=timing["environment"]["torch"], when=timing["measured_at"]))
    for warning in timing["warnings"]:
        st.warning(warning)

st.download_button(
    _("Download the table as CSV"), pd.DataFrame(rows).to_csv(index=False).encode(),
    file_name="resnet-explorer-complexity.csv", mime="text/csv", icon=":material/download:",
)

table6_live()

if still_measuring:
    time.sleep(1)  # then the page again, with what the background measured meanwhile
    st.rerun()
