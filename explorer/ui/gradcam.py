"""Widgets for the Grad-CAM page: choosing an image and models, and showing one result."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.analysis.gradcam import (
    Classifier,
    GradCam,
    overlay,
    pretrained_classifier,
    run_classifier,
    state_dict_classifier,
)
from explorer.analysis.runs import has_shortcuts, run_label
from explorer.data.datasets import test_examples
from explorer.data.images import (
    MAX_IMAGE_UPLOAD_MB,
    SAMPLE_PHOTOS,
    SUPPORTED_FORMATS,
    load_image_with_notes,
    sample_photo,
)
from explorer.i18n import N_
from explorer.models.weights import (
    MAX_WEIGHTS_UPLOAD_MB,
    PRETRAINED_DEPTHS,
    cached_weights_path,
    check_pretrained_obtainable,
    weights_url,
)
from explorer.train.presets import PRESETS, custom_configs
from explorer.train.pretrained import check_test_set_available, check_weights_available, pretrained_run
from explorer.train.store import Run
from explorer.ui.converged import test_set
from explorer.ui.i18n import _, translate
from explorer.ui.jobs import all_runs, shared_manager, state_name
from explorer.ui.live import live_panel
from explorer.ui.session import viewer

PRETRAINED = [f"resnet{depth}" for depth in PRETRAINED_DEPTHS]


IMAGE_SOURCES = [N_("Sample photo"), N_("Upload"), N_("CIFAR-10 test image")]
EXAMPLES_PER_CLASS = 8


def pick_image() -> tuple[np.ndarray, list[str], str] | None:
    """A sample photo, an upload or a CIFAR-10 test image, decoded to RGB; a bad file gets a
    message and None."""
    source = st.radio(_("Image"), IMAGE_SOURCES, horizontal=True, format_func=translate)
    if source == IMAGE_SOURCES[0]:
        photo_names = {photo: translate(photo) for photo in SAMPLE_PHOTOS}  # looked up now: see train_form.choice_names
        name = st.selectbox(_("Photo (bundled with scikit-image)"), list(SAMPLE_PHOTOS), format_func=photo_names.get)
        return sample_photo(name), [], name
    if source == IMAGE_SOURCES[2]:
        return pick_test_image()
    upload = st.file_uploader(_("Image file"), type=list(SUPPORTED_FORMATS), max_upload_size=MAX_IMAGE_UPLOAD_MB,
                              help=_("PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF; any colour mode"))
    if upload is None:
        st.info(_("Upload an image, or pick a sample photo."))
        return None
    try:
        image, notes = load_image_with_notes(upload_bytes(upload, MAX_IMAGE_UPLOAD_MB, _("images")), name=upload.name)
    except ValueError as error:  # an ImageError, or a file over the cap
        st.error(str(error), icon=":material/error:")
        return None
    return image, notes, upload.name


def pick_test_image() -> tuple[np.ndarray, list[str], str] | None:
    """A CIFAR-10 test image, picked by class from the first few of each; offline without the data
    set, a message and None."""
    dataset, ready = test_set("gradcam-images")
    if not ready:
        return None
    try:
        check_test_set_available(dataset)
        with st.spinner(_("Reading CIFAR-10's test images (once for the server)")):
            examples = dict(_examples(dataset))
    except ValueError as error:
        st.warning(_("CIFAR-10's test images are not available here: {error}").format(error=error),
                   icon=":material/cloud_off:")
        return None
    label = st.selectbox(_("Class"), list(examples))
    shown = examples[label]
    columns = st.columns(len(shown))
    for column, (index, image) in zip(columns, shown):
        column.image(image, caption=f"#{index}", width="stretch")
    picked = st.radio(_("Test image"), range(len(shown)), format_func=lambda i: f"#{shown[i][0]}", horizontal=True)
    index, image = shown[picked]
    return np.array(image), [], _("CIFAR-10 test image #{index} ({label})").format(index=index, label=label)


@st.cache_resource(max_entries=2, show_spinner=False)
def _examples(dataset: str) -> tuple[tuple[str, tuple], ...]:
    # Shared by every session: tuples of read-only arrays, never changed.
    return tuple((label, tuple(items)) for label, items in
                 test_examples(dataset, per_class=EXAMPLES_PER_CLASS).items())


def converged(spec: str) -> tuple[Classifier, threading.Lock]:
    """A published converged CIFAR-10 ResNet (its weights need no test set)."""
    check_weights_available(spec)  # offline: one sentence now, not a download that can only fail
    with st.spinner(_("Loading the published {name}").format(name=spec.removeprefix("pretrained:"))):
        return trained_run(str(pretrained_run(spec)))


def upload_weights(label: str) -> bytes | None:
    """A file uploader for a state_dict file, capped at MAX_WEIGHTS_UPLOAD_MB: its bytes, or None.

    A file over the cap raises ValueError.
    """
    upload = st.file_uploader(label, type=["pth", "pt"], max_upload_size=MAX_WEIGHTS_UPLOAD_MB,
                              help=_("A file made by torch.save, up to {cap} MB (ResNet-152's is "
                                     "about 230 MB); read with weights_only=True, so no code in it can run."
                                     ).format(cap=MAX_WEIGHTS_UPLOAD_MB))
    return None if upload is None else upload_bytes(upload, MAX_WEIGHTS_UPLOAD_MB, _("weights files"))


def upload_bytes(upload, cap_mb: int, what: str) -> bytes:
    """The upload's bytes, or ValueError when it is over ``cap_mb``.

    The widget's cap is kept by the browser; a request made without one meets only the server's
    (larger) cap, so it is checked here again.
    """
    if upload.size > cap_mb * 2**20:
        raise ValueError(_("{name} is {size:,.1f} MB; {what} up to {cap} MB are accepted").format(
            name=upload.name, size=upload.size / 2**20, what=what, cap=cap_mb))
    return upload.getvalue()


@st.cache_resource(max_entries=4, show_spinner=False)
def _cached(kind: str, key: str, _load) -> tuple[Classifier, threading.Lock]:
    # Shared read-only across sessions; the lock keeps two sessions' hooks off the same model at once.
    return _loaded(_load), threading.Lock()


def _loaded(load) -> Classifier:
    """``load()``, with anything it raises turned into a ValueError the page shows in one line.

    The library refuses bad files with ValueError; whatever else torch may raise on a file we did
    not foresee (a RuntimeError, running out of memory) must not reach the page as a traceback.
    """
    try:
        return load()
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - see above
        text = str(error).strip().splitlines()
        raise ValueError(f"{type(error).__name__}: {text[0][:200] if text else 'no details'}") from None


def pretrained(name: str, weights: bytes | None = None) -> tuple[Classifier, threading.Lock]:
    if weights is not None:
        return _cached("upload", f"{name}:{hashlib.sha256(weights).hexdigest()}",
                       lambda: pretrained_classifier(name, weights))
    if cached_weights_path(name).exists():
        return _cached("pretrained", name, lambda: pretrained_classifier(name))
    check_pretrained_obtainable(name)  # offline: one sentence now, not a download that can only fail
    bar = st.progress(0.0, text=_("Downloading {name}'s ImageNet weights").format(name=name))

    def report(done: int, total: int) -> None:
        if total:
            bar.progress(min(done / total, 1.0), text=_("Downloading {name}: {done:.0f} of {total:.0f} MiB").format(
                name=name, done=done / 2**20, total=total / 2**20))

    try:
        return _cached("pretrained", name, lambda: pretrained_classifier(name, progress=report))
    finally:
        bar.empty()  # done or failed: no label left saying it is downloading


def uploaded_state_dict(name: str, weights: bytes) -> tuple[Classifier, threading.Lock]:
    return _cached("state_dict", f"{name}:{hashlib.sha256(weights).hexdigest()}",
                   lambda: state_dict_classifier(name, weights))


def trained_run(run_dir: str) -> tuple[Classifier, threading.Lock]:
    saved = Path(run_dir) / "model.pt"
    version = str(saved.stat().st_mtime_ns) if saved.exists() else "none"
    return _cached("run", f"{run_dir}:{version}", lambda: run_classifier(run_dir))


def shown_title(classifier: Classifier) -> str:
    """The classifier's title in this session's language."""
    if classifier.title_text is None:
        return classifier.title
    template, values = classifier.title_text
    return translate(template).format(**values)


def shown_trained_on(classifier: Classifier) -> str | None:
    """What the classifier's net saw in training, in this session's language."""
    if classifier.trained_on_text is None:
        return classifier.trained_on
    template, values = classifier.trained_on_text
    return translate(template).format(**values)


def runs_with_models() -> dict[str, str]:
    """Run folder -> label, for runs that have saved a model."""
    return {str(run.path): f"{run_label(run, _=_)} [{state_name(run.status().get('state', '?'))}]" for run in all_runs()
            if (run.path / "model.pt").exists()}


def show_result(image: np.ndarray, result: GradCam, opacity: float, colormap: str, key: str) -> None:
    """The image, the heatmap and the overlay side by side, with the two downloads."""
    blended = overlay(image, result.heatmap, opacity, colormap)
    heat_only = overlay(np.zeros_like(image), result.heatmap, 1.0, colormap)
    left, middle, right = st.columns(3)
    left.image(image, caption=_("image"), width="stretch")
    middle.image(heat_only, caption=_("Grad-CAM at {layer} ({height}x{width} upsampled)").format(
        layer=result.layer, height=result.layer_size[0], width=result.layer_size[1]), width="stretch")
    right.image(blended, caption=_("overlay, opacity {opacity:.0%}").format(opacity=opacity), width="stretch")
    for note in result.notes:
        st.caption(note)
    png, npy = io.BytesIO(), io.BytesIO()
    from PIL import Image

    Image.fromarray(blended).save(png, format="PNG")
    np.save(npy, result.heatmap)
    buttons = st.columns(2)
    buttons[0].download_button(_("Overlay (PNG)"), png.getvalue(), f"gradcam-{result.layer}.png", "image/png",
                               key=f"png-{key}", icon=":material/download:")
    buttons[1].download_button(_("Heatmap (.npy)"), npy.getvalue(), f"gradcam-{result.layer}.npy",
                               "application/octet-stream", key=f"npy-{key}", icon=":material/download:")


TRAINING_KEY = "gradcam_training"  # the pair this session started from the Grad-CAM page
# A plain-20 and a ResNet-20 on the presets' short CPU schedule (16-pixel shapes-easy), both nets
# trained at once in well under 30 s on 2 cores. Their heatmaps are 4x4 at the last stage, upsampled.
OFFERED_PAIR = ("cifar-plain20", "cifar-resnet20")


def offer_training() -> None:
    """No run has saved a model: one click trains a pair here, and the page follows it."""
    started = [run_dir for run_dir in st.session_state.get(TRAINING_KEY, []) if Run(run_dir).exists()]
    if started:
        st.info(_("Training a plain-20 and a ResNet-20 on the built-in shapes; their heatmaps appear here as soon "
                  "as each has saved a model (the first checkpoint, after 100 steps)."),
                icon=":material/model_training:")
        live_panel(started, curves=False)
        return
    st.info(_("No run has saved a model yet. Train a pair here (about 30 s on a CPU, offline), or start any run on "
              "the Train page. For ImageNet nets, pick the first option and upload torchvision's weights file."),
            icon=":material/model_training:")
    if st.button(_("Train a plain-20 and a ResNet-20 (about 30 s)"), icon=":material/play_arrow:", type="primary"):
        cpu = PRESETS["fig6"].cpu  # the presets' short CPU schedule
        configs = custom_configs(list(OFFERED_PAIR), cpu.dataset, steps=cpu.steps, batch_size=cpu.batch_size,
                                 lr=cpu.lr, device="auto", train_size=cpu.train_size,
                                 image_size=cpu.image_size, augment=cpu.augment)
        try:
            jobs = shared_manager().submit_group(configs, group=time.strftime("%Y%m%d-%H%M%S"), owner=viewer().owner)
        except ValueError as error:
            st.error(_("Cannot start: {error}").format(error=error), icon=":material/error:")
            return
        st.session_state[TRAINING_KEY] = [job.run_dir for job in jobs]
        st.rerun()


def weights_obtainable(name: str) -> bool:
    """Whether ``name``'s ImageNet weights are here or can be downloaded."""
    return cached_weights_path(name).exists() or _reachable(name, weights_url(name))


@st.cache_data(ttl=300, show_spinner=False)
def _reachable(name: str, url: str) -> bool:
    # Asked at most every 5 minutes per address: offline, each ask can take seconds.
    try:
        check_pretrained_obtainable(name)
    except ValueError:
        return False
    return True


def default_pair(runs: dict[str, str]) -> list[str]:
    """The newest plain run and the newest residual one (of those with a saved model), so that the
    page opens on the comparison its label asks for; the newest two when there is no such pair."""
    newest = {}
    for run_dir in runs:  # in the order listed: oldest first
        model = Run(run_dir).config().get("model")
        residual = has_shortcuts(model.get("name", "")) if isinstance(model, dict) else None
        if residual is not None:
            newest[residual] = run_dir
    return [newest[False], newest[True]] if len(newest) == 2 else list(runs)[-2:]
