"""The Grad-CAM page under AppTest: offline pretrained weights, and a plain and a residual run side by side."""

import io
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer.data.images import MAX_IMAGE_UPLOAD_MB
from explorer.models.weights import MAX_CLASSES, MAX_WEIGHTS_UPLOAD_MB, MIRROR_ENV
from explorer.train.store import DEFAULT_RUNS_DIR, Run
from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")


def _page() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page(str(ROOT / "pages" / "gradcam.py"))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture(scope="module")
def plain_and_residual_runs():
    dirs = []
    for model in ("cifar-plain8", "cifar-resnet8"):
        out = DEFAULT_RUNS_DIR / f"gradcam-page-{model}"
        if not (out / "model.pt").exists():
            result = subprocess.run(
                [sys.executable, "-m", "explorer", "train", "--model", model, "--dataset", "shapes", "--train-size",
                 "128", "--test-size", "32", "--steps", "3", "--batch-size", "32", "--probe-every", "0", "--out",
                 str(out), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr
        dirs.append(str(out))
    yield dirs
    for run_dir in dirs:  # leave the shared runs folder as the other page tests expect it
        shutil.rmtree(run_dir, ignore_errors=True)


def test_offline_pretrained_weights_get_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens there: as offline as it gets
    app = _page()
    app.radio[1].set_value("ImageNet ResNet (pretrained)").run()
    infos = [i.value for i in app.info]
    said = next((i for i in infos if "resnet50's ImageNet weights file is not on this machine" in i), None)
    assert said and "cannot be downloaded" in said and "upload torchvision's file resnet50-" in said, infos
    assert "Runs trained here" in said  # and what works offline
    # One sentence a class can read: no errno text, no server path, no stale download label or bar.
    assert "Errno" not in said and str(tmp_path) not in said and not app.get("progress")
    assert not app.error and not app.exception


def test_grad_cam_opens_on_the_runs_trained_here_when_imagenet_weights_are_absent(monkeypatch, tmp_path,
                                                                                  plain_and_residual_runs):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    app = _page()
    assert app.radio[1].value == "Runs trained here"
    assert not app.exception and not app.error
    # It opens on the comparison its label asks for: a plain run and a residual one.
    picked = [Run(run_dir).config()["model"]["name"] for run_dir in app.multiselect[0].value]
    assert sorted("resnet" in name for name in picked) == [False, True], picked
    said = [c.value for c in app.caption if "saw only" in c.value]
    assert said and "shapes images of 32x32 pixels in 10 classes" in said[0] and "forced into one" in said[0]


def test_offline_with_no_trained_net_the_page_offers_to_train_a_pair(monkeypatch, tmp_path):
    from explorer.train.store import Run
    from explorer.ui import gradcam as gradcam_widgets
    from explorer.ui.jobs import shared_manager

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")
    monkeypatch.setattr(gradcam_widgets, "runs_with_models", lambda: {})
    app = _page()
    assert app.radio[1].value == "Runs trained here"  # offline: not the download that can only fail
    assert any("Train a pair here" in i.value for i in app.info)
    next(b for b in app.button if b.label.startswith("Train a plain-20 and a ResNet-20")).click().run()
    assert not app.exception and not app.error
    run_dirs = app.session_state[gradcam_widgets.TRAINING_KEY]
    try:
        assert sorted(Run(d).config()["model"]["name"] for d in run_dirs) == ["cifar-plain20", "cifar-resnet20"]
        assert {Run(d).config()["data"]["dataset"] for d in run_dirs} == {"shapes-easy"}
        assert any("heatmaps appear here" in i.value for i in app.info) and len(app.get("progress")) == 2
        assert not any(b.label.startswith("Train a plain-20") for b in app.button)  # started once
    finally:
        manager = shared_manager()
        for run_dir in run_dirs:
            manager.stop(run_dir)
            manager.wait(run_dir, timeout=60)
            Run(run_dir).delete()


def test_plain_and_residual_runs_side_by_side(plain_and_residual_runs):
    app = _page()
    app.radio[1].set_value("Runs trained here").run()
    assert not app.exception, [e.value for e in app.exception]
    app.multiselect[0].set_value(plain_and_residual_runs).run()
    layers = app.multiselect[1]
    assert layers.value == ["layer3"] and "layer2.0" in layers.options
    layers.set_value(["layer2", "layer3"]).run()
    target = next(box for box in app.selectbox if box.label.startswith("Target class"))
    target.set_value("star").run()
    assert not app.exception, [e.value for e in app.exception]
    titles = [header.value for header in app.subheader]
    assert any("plain8" in t for t in titles) and any("resnet8" in t for t in titles), titles
    assert len(app.dataframe) == 2 and all(len(frame.value) == 5 for frame in app.dataframe)
    assert any("Heatmaps for **star**" in c.value for c in app.caption)
    # an overlay PNG and a heatmap .npy for each of 2 layers of 2 runs
    assert len(app.get("download_button")) == 2 * 2 * 2
    assert not app.error


# --- bad weights and large files: a message each, never a traceback --------------------------------

class RunsCode:
    def __reduce__(self):
        return (print, ("this ran",))


def _saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _upload_weights(app: AppTest, content: bytes, model: str = "resnet18") -> AppTest:
    app.radio[1].set_value("Upload a state_dict").run()
    app.text_input[0].set_value(model)
    app.file_uploader[0].set_value(("weights.pt", content, "application/octet-stream")).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture
def no_large_layer(monkeypatch):
    real_init = torch.nn.Linear.__init__

    def guarded(self, in_features, out_features, *args, **kwargs):
        if out_features > MAX_CLASSES and torch.empty(0).device.type != "meta":
            raise AssertionError(f"a Linear layer with {out_features:,} outputs was built")
        real_init(self, in_features, out_features, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", guarded)


@pytest.mark.parametrize("content,message", [
    (_saved({"fc.weight": torch.empty_strided((50_000_000, 0), (1, 1))}), "fc.weight has shape (50000000, 0)"),
    (_saved({"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}), "missing: conv1.weight"),
    (_saved({"fc.weight": torch.zeros(2, 2), "payload": RunsCode()}), "refused"),
    (pickle.dumps(RunsCode()), "refused"),
    (b"not a weights file", "not a PyTorch weights file"),
])
def test_bad_weights_files_get_a_message(no_large_layer, content, message):
    app = _upload_weights(_page(), content)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("These weights cannot be used") and message in errors[0], errors


def test_an_unforeseen_error_while_loading_weights_is_a_message(monkeypatch):
    def explode(name, weights):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory\nmore details")

    monkeypatch.setattr("explorer.ui.gradcam.state_dict_classifier", explode)
    app = _upload_weights(_page(), _saved({"fc.weight": torch.zeros(3, 512)}))
    assert [e.value for e in app.error] == ["These weights cannot be used: RuntimeError: DefaultCPUAllocator: can't "
                                            "allocate memory"]


def test_uploads_are_capped_at_what_the_app_needs(monkeypatch):
    app = _page()
    app.radio[0].set_value("Upload").run()
    app.radio[1].set_value("Upload a state_dict").run()
    image_uploader, weights_uploader = app.file_uploader
    assert image_uploader.proto.max_upload_size_mb == MAX_IMAGE_UPLOAD_MB == 50
    assert weights_uploader.proto.max_upload_size_mb == MAX_WEIGHTS_UPLOAD_MB == 256
    app.radio[1].set_value("ImageNet ResNet (pretrained)").run()
    assert app.file_uploader[1].proto.max_upload_size_mb == MAX_WEIGHTS_UPLOAD_MB

    # The widget's cap is kept by the browser; a file that came round it is refused on the server.
    monkeypatch.setattr("explorer.ui.gradcam.MAX_IMAGE_UPLOAD_MB", 1)
    monkeypatch.setattr("explorer.ui.gradcam.MAX_WEIGHTS_UPLOAD_MB", 1)
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8)).save(png, "PNG")
    assert png.tell() > 2**20
    app = _page()
    app.radio[0].set_value("Upload").run()
    app.file_uploader[0].set_value(("big.png", png.getvalue(), "image/png")).run()
    assert not app.exception
    assert any("big.png is 1.8 MB; images up to 1 MB are accepted" in e.value for e in app.error), app.error
    app.radio[1].set_value("Upload a state_dict").run()
    app.file_uploader[1].set_value(("big.pt", bytes(2 * 2**20), "application/octet-stream")).run()
    assert not app.exception
    assert any("big.pt is 2.0 MB; weights files up to 1 MB are accepted" in e.value for e in app.error), app.error
