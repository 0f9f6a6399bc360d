import streamlit as st

from explorer.analysis.gradcam import COLORMAPS, cam_layers, default_layer, explain
from explorer.i18n import N_
from explorer.models.published import PUBLISHED_SPECS
from explorer.ui.converged import converged_name
from explorer.ui.feedback import explain_errors
from explorer.ui.gradcam import (
    PRETRAINED,
    cached_weights_path,
    converged,
    default_pair,
    offer_training,
    pick_image,
    pretrained,
    runs_with_models,
    show_result,
    shown_title,
    shown_trained_on,
    trained_run,
    upload_weights,
    uploaded_state_dict,
    weights_obtainable,
)
from explorer.ui.i18n import _, translate

st.title("Grad-CAM")
st.caption(_("Where a network finds evidence for a class: each channel of a layer weighted by the mean gradient of the "
           "class score, summed, negatives dropped (Selvaraju et al., 2017; computed with captum's LayerGradCam)."))

picked = pick_image()
SOURCES = [N_("ImageNet ResNet (pretrained)"), N_("Converged CIFAR-10 ResNet (published)"), N_("Runs trained here"),
           N_("Upload a state_dict")]
runs = runs_with_models()
# Open on something that works: the ImageNet net when its weights are here or can be downloaded,
# else the runs trained here, or the offer to train a pair (offline, a download can only fail).
opens_on = 0 if cached_weights_path("resnet50").exists() or (not runs and weights_obtainable("resnet50")) else 2
source = st.radio(_("Model"), SOURCES, index=opens_on, horizontal=True, format_func=translate)
models = []  # (classifier, lock)
with explain_errors(_("These weights cannot be used")):
    if source == SOURCES[0]:
        name = st.selectbox(_("Network"), PRETRAINED, index=2)
        weights = upload_weights(_("Or your copy of torchvision's weights file (for a machine offline)"))
        if weights is not None:
            models.append(pretrained(name, weights))
        else:
            try:
                models.append(pretrained(name))
            except ValueError as error:  # offline, or the download failed
                st.info(_("{error}. Or pick **Runs trained here**: nets trained on this machine need nothing "
                          "from the internet.").format(error=error), icon=":material/cloud_off:")
    elif source == SOURCES[1]:
        specs = st.multiselect(_("Nets (trained to convergence on CIFAR-10's ten classes; images are resized to 32x32)"),
                               PUBLISHED_SPECS, default=[PUBLISHED_SPECS[3]], format_func=converged_name,
                               max_selections=3, placeholder=_("Choose options"))
        for spec in specs:
            try:
                models.append(converged(spec))
            except ValueError as error:  # offline, and the weights are not in the torch hub cache
                st.info(_("{error}. Or pick **Runs trained here**.").format(error=error), icon=":material/cloud_off:")
    elif source == SOURCES[2]:
        if not runs:
            offer_training()
        chosen = st.multiselect(_("Runs (pick a plain and a residual one to compare)"), list(runs),
                                default=default_pair(runs), format_func=runs.get, max_selections=4, placeholder=_("Choose options"))
        models = [trained_run(run_dir) for run_dir in chosen]
    else:
        name = st.text_input(_("Model name (as in the registry)"), "resnet18")
        weights = upload_weights(_("state_dict file (read with weights_only=True)"))
        if weights is not None:
            models.append(uploaded_state_dict(name.strip(), weights))
if picked is None or not models:
    st.stop()
image, notes, image_name = picked
for note in notes:
    st.caption(f"{image_name}: {note}")

first = models[0][0]
with explain_errors(_("Grad-CAM needs a ResNet")):
    layers_available = cam_layers(first.model)
layers = st.multiselect(_("Layers (every stage and every block)"), layers_available,
                        default=[default_layer(first.model)], placeholder=_("Choose options"))
classes = first.classes if len({tuple(c.classes) for c, _lock in models}) == 1 else []
TOP_1 = N_("top-1 prediction")
target = st.selectbox(_("Target class (type to search)"), [TOP_1, *classes],
                      format_func=lambda option: translate(TOP_1) if option == TOP_1 else option,
                      help=_("The class whose evidence is shown; by default the model's own top prediction."))
left, right = st.columns(2)
opacity = left.slider(_("Overlay opacity"), 0.0, 1.0, 0.5, 0.05)
colormap = right.selectbox(_("Colormap"), COLORMAPS)
if not layers:
    st.info(_("Pick at least one layer."))
    st.stop()

for index, (classifier, lock) in enumerate(models):
    st.subheader(shown_title(classifier))
    with explain_errors(_("Grad-CAM could not run")), lock:
        chosen_layers = [layer for layer in layers if layer in cam_layers(classifier.model)]
        results = explain(classifier, image, chosen_layers or None,
                          target=None if target == TOP_1 else target, _=_)
    st.dataframe([{_("class"): label, _("probability"): f"{prob:.1%}"} for label, prob in results[0].predictions],
                 hide_index=True)
    if classifier.trained_on:
        st.caption(_(":material/info: This net saw only {trained_on} in training. An image unlike those "
                     "(a photo, say) is still forced into one of those classes: the scores then say which class it "
                     "resembles most, not that it shows one, and the heatmap shows what drove that choice."
                     ).format(trained_on=shown_trained_on(classifier)))
    st.caption(_("Heatmaps for **{label}**.").format(label=results[0].target_label))
    for result in results:
        show_result(image, result, opacity, colormap, key=f"{index}-{result.layer}")
