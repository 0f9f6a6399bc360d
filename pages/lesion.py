import streamlit as st

from explorer.analysis.lesion import lesion_reading, shown_note
from explorer.figures import lesion_blocks_figure, lesion_random_figure
from explorer.models import resolve
from explorer.train.store import Run
from explorer.ui.analysis import analyse, pick_trained_runs
from explorer.ui.i18n import _

st.title(_("Lesion study"))
st.markdown(_(
    "Veit, Wilber and Belongie (NeurIPS 2016) deleted single blocks of a **trained** ResNet at test time: its error "
    "barely moved, except at the downsampling blocks, while removing a layer of a plain net sent it to chance; "
    "deleting several blocks raised a ResNet's error smoothly. Their reading: a ResNet behaves like an ensemble of "
    "many paths of different lengths, none of them essential. Here you delete blocks of the nets you trained: a "
    "residual block loses its branch (its output is its shortcut), a plain block is replaced by the identity. "
    "Veit et al.'s own nets are here too: the published ResNet-56 and ResNet-110, trained to convergence on CIFAR-10."
))
records = pick_trained_runs("lesion-runs", converged=(56, 110), converged_default=(56,))

columns = st.columns(3)
blocks = columns[0].number_input(_("Blocks deleted at once, up to K"), 1, 50, 5,
                                 help=_("Random sets of 1, 2, ... K blocks; a plain-20 has 7 blocks that can be "
                                        "deleted."))
images = columns[1].number_input(_("Test images"), 100, 10_000, 1_000, step=100,
                                 help=_("The first N images of each run's own test set (all of it if it has fewer)."))
draws = columns[2].number_input(_("Random draws per k"), 1, 20, 5)
options = {"blocks": int(blocks), "images": int(images), "draws": int(draws), "device": "auto", "clip_blocks": True}
studies = [task.result for task in analyse("lesion", records, options, "lesion-asked",
                                           _("Run the lesion study (on a CPU: seconds for a net trained here, minutes "
                                             "for a converged one)"))]
if not studies:
    st.caption(_("Each run is studied in a worker of its own, off this page: you can switch pages meanwhile. A "
                 "study made before on the same weights and settings shows at once."))
    st.stop()

st.dataframe([{_("net"): study["label"], _("test error, intact"): f"{study['baseline_error']:.1%}",
               _("images"): study["images"]} for study in studies], hide_index=True)
st.subheader(_("One block deleted"))
by_depth = {}
for study in studies:  # plain and residual nets of one depth share their block names: one chart each
    by_depth.setdefault(len(study["blocks"]), []).append(study)
for blocks, group in sorted(by_depth.items()):
    depths = {resolve(study["model"]).fixed.get("depth") for study in group}
    title = (_("Depth {depth}: {blocks} blocks").format(depth=depths.pop(), blocks=blocks)
             if len(depths) == 1 and None not in depths else _("{blocks} blocks").format(blocks=blocks))
    st.markdown(f"**{title}**")
    st.plotly_chart(lesion_blocks_figure(group, _=_), width="stretch", key=f"blocks-{blocks}")
st.caption(_("No bar: a plain block that changes the shape (where the width doubles) has nothing to be replaced "
             "by, so it cannot be deleted; a residual one keeps its option-A shortcut."))
st.subheader(_("Several blocks deleted at random"))
st.plotly_chart(lesion_random_figure(studies, _=_), width="stretch")

classes = len((Run(studies[0]["run_dir"]).data_info() or {}).get("classes") or range(10))
st.subheader(_("What our measurement says"))
for line in lesion_reading(studies, classes=classes, _=_):
    st.markdown(f"- {line}")
st.caption(_(
    "On {images:,} test images of each run, in eval mode. Veit et al. measured nets trained to "
    "convergence (ResNet-110 on CIFAR-10, 200-layer ResNets on ImageNet), as the published nets here are; nets "
    "trained for a minute on a CPU are far from that, so read the sentences above as what these nets show. "
    "bench/results/lesion-landscape-* records the study on three seeds of the Train page's pair."
).format(images=studies[0]["images"]))
for study in studies:
    for note in study.get("notes", []):
        st.caption(f"{study['label']}: {shown_note(note, _)}")
