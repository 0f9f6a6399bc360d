"""The Grad-CAM page under AppTest: offline pretrained weights, and a plain and a residual run side by side."""

import shutil
import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from explorer.models.weights import MIRROR_ENV
from explorer.train.store import DEFAULT_RUNS_DIR
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
    errors = [e.value for e in app.error]
    assert any("could not download the pretrained resnet50 weights" in e and "upload it" in e for e in errors), errors
    assert not app.exception


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
