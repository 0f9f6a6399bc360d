"""Grad-CAM against a direct computation, its bookkeeping (hooks, mode, memory), weights and the CLI."""

import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.analysis.gradcam import (
    Classifier,
    cam_layers,
    check_layer,
    default_layer,
    explain,
    layer_gradcam,
    overlay,
    pretrained_classifier,
    resolve_target,
    run_classifier,
    state_dict_classifier,
)
from explorer.models import build_model
from explorer.models import weights as weights_module
from explorer.models.weights import fit_state_dict, load_weights_file
from tests.conftest import ROOT


def tiny_net(seed: int = 0, num_classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("cifar-resnet8", num_classes=num_classes, input_size=16)
    # Train-mode batches give BN running statistics that are not the initial ones, so eval mode differs.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 16, 16))
    return model.eval()


def direct_gradcam(model, inputs, layer, target):
    """Grad-CAM by hand: the layer's activations A, w_k = mean of dy/dA_k, ReLU(sum_k w_k A_k)."""
    saved = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, out: saved.setdefault("a", out))
    try:
        score = model(inputs)[0, target]
    finally:
        handle.remove()
    activations = saved["a"]
    (gradient,) = torch.autograd.grad(score, activations)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1))[0].detach()


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("layer", ["layer1", "layer2.0", "layer3"])
def test_gradcam_equals_a_direct_computation(layer):
    model = tiny_net()
    inputs = torch.randn(1, 3, 16, 16)
    for target in range(4):
        ours = layer_gradcam(model, inputs, layer, target)
        expected = direct_gradcam(model, inputs, layer, target)
        assert ours.shape == expected.shape
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert (expected > 0).any() and (expected == 0).any(), "the ReLU must be exercised by this check"


@pytest.mark.parametrize("training", [True, False])
def test_hooks_removed_and_mode_kept(training):
    model = tiny_net()
    model.train(training)
    layer_gradcam(model, torch.randn(1, 3, 16, 16), "layer3", 1)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert hook_count(model) == 0
    with pytest.raises(Exception):
        layer_gradcam(model, torch.randn(1, 3, 16, 16), "layer3", 99)  # no class 99: fails inside captum
    assert hook_count(model) == 0 and model.training is training


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_does_not_grow_over_100_calls():
    model = tiny_net()
    classifier = Classifier(model, ["a", "b", "c", "d"], "tiny", input_size=16)
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for _ in range(10):  # allocator warm-up
        explain(classifier, image, layers="layer3")
    before = resident_bytes()
    for _ in range(100):
        explain(classifier, image, layers="layer3")
    grown = resident_bytes() - before
    # One call's own data is ~40 KB; a leak of graphs or hooks would add that per call at least.
    assert grown < 4 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 100 calls"


def test_explain_maps_to_the_image_as_given():
    classifier = Classifier(tiny_net(), ["circle", "square", "tabby cat", "tiger cat"], "tiny", input_size=16)
    image = np.random.default_rng(1).integers(0, 256, (37, 91, 3), dtype=np.uint8)
    results = explain(classifier, image, layers=["layer2", "layer3"])
    assert [r.layer for r in results] == ["layer2", "layer3"]
    predictions = results[0].predictions
    assert len(predictions) == 4 and [p for _, p in predictions] == sorted((p for _, p in predictions), reverse=True)
    assert abs(sum(p for _, p in predictions) - 1) < 1e-5
    assert results[0].target_label == predictions[0][0]  # top-1 by default
    assert results[0].layer_size == (8, 8) and results[1].layer_size == (4, 4)
    for result in results:
        assert result.heatmap.shape == (37, 91) and result.heatmap.dtype == np.float32
        assert (result.heatmap >= 0).all()
        if result.peak:
            assert result.heatmap[result.peak] == result.heatmap.max()
    by_name = explain(classifier, image, target="square")[0]
    assert by_name.target == 1 and by_name.target_label == "square"


def test_pretrained_shape_inputs_keep_their_aspect():
    model = build_model("resnet18").eval()
    classifier = Classifier(model, [str(i) for i in range(1000)], "resnet18")
    result = explain(classifier, np.zeros((100, 300, 3), np.uint8))[0]
    # The shorter side goes to 224 (and the longer to 672): layer4 is 32x down, so 7 by 21.
    assert result.layer_size == (7, 21) and result.heatmap.shape == (100, 300)


def test_targets_by_index_name_and_part():
    classes = ["tabby cat", "tiger cat", "Egyptian cat", "goldfish"]
    assert resolve_target(classes, 2) == 2 and resolve_target(classes, "3") == 3
    assert resolve_target(classes, "GOLDFISH") == 3 and resolve_target(classes, "egypt") == 2
    with pytest.raises(ValueError, match="matches 3 classes"):
        resolve_target(classes, "cat")
    with pytest.raises(ValueError, match="out of range"):
        resolve_target(classes, 4)
    with pytest.raises(ValueError, match="no class named"):
        resolve_target(classes, "zebra")


def test_layers_cover_every_stage_and_block():
    model = build_model("resnet50")
    layers = cam_layers(model)
    assert layers[0] == "layer1" and default_layer(model) == "layer4"
    assert sum("." not in name for name in layers) == 4 and len(layers) == 4 + 3 + 4 + 6 + 3
    assert "layer3.5" in layers and check_layer(model, "layer4.2") == "layer4.2"
    with pytest.raises(ValueError, match="no layer 'layer5'"):
        check_layer(model, "layer5")
    with pytest.raises(ValueError, match="stages layer1"):
        cam_layers(build_model("vgg16"))


def test_overlay_blends_by_opacity():
    image = np.full((8, 8, 3), 100, np.uint8)
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[2, 3] = 5
    assert (overlay(image, heatmap, opacity=0.0) == image).all()
    full = overlay(image, heatmap, opacity=1.0, colormap="jet")
    assert full.dtype == np.uint8 and full.shape == (8, 8, 3)
    assert tuple(full[2, 3]) != tuple(full[0, 0])  # the peak takes the top colour, the rest the bottom one
    with pytest.raises(ValueError, match="unknown colormap"):
        overlay(image, heatmap, colormap="rainbow")


# --- weights -----------------------------------------------------------------------------------
class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/explorer-test-pickle-ran")


def test_a_weights_file_that_carries_code_is_refused_and_never_runs(tmp_path):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": RunsCode()}, path)
    plain_pickle = tmp_path / "evil.pkl"
    plain_pickle.write_bytes(pickle.dumps(RunsCode()))
    for source in (path, plain_pickle):
        with pytest.raises(ValueError, match="refused"):
            load_weights_file(source)
    assert not MARKER.exists()


def test_weights_files_are_unwrapped_or_refused_with_a_reason(tmp_path):
    model = tiny_net(num_classes=3)
    state = model.state_dict()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "step": 5}, path)
    loaded = load_weights_file(path)
    assert loaded.keys() == state.keys()
    for bad, message in ((b"", "empty"), (b"hello, not weights", "not a PyTorch weights file"),
                         (path.read_bytes()[:2000], "not a PyTorch weights file")):
        with pytest.raises(ValueError, match=message):
            load_weights_file(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_weights_file(tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        load_weights_file(tmp_path / "list.pt")


def test_mismatched_keys_are_named():
    state = tiny_net(num_classes=3).state_dict()
    state.pop("conv1.weight")
    state["extra.bias"] = torch.zeros(1)
    with pytest.raises(ValueError) as error:
        fit_state_dict(build_model("cifar-resnet8", num_classes=4), state, "cifar-resnet8")
    message = str(error.value)
    assert "1 missing: conv1.weight" in message and "1 unexpected: extra.bias" in message
    assert "of another shape: fc.weight (file (3, 64), model (4, 64))" in message


@pytest.fixture
def no_large_layer(monkeypatch):
    """Fail, before any memory is taken, if a model gets a real (not meta) layer of over MAX_CLASSES outputs."""
    real_init = torch.nn.Linear.__init__

    def guarded(self, in_features, out_features, *args, **kwargs):
        if out_features > weights_module.MAX_CLASSES and torch.empty(0).device.type != "meta":
            raise AssertionError(f"a Linear layer with {out_features:,} outputs was built")
        real_init(self, in_features, out_features, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Linear, "__init__", guarded)


def crafted_weights(**tensors) -> bytes:
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getvalue()


def test_absurd_shapes_are_refused_before_anything_is_built(no_large_layer):
    # 1.5 KB that claims 50 million classes: a 100 GB layer if it were built.
    fifty_million = crafted_weights(**{"fc.weight": torch.empty_strided((50_000_000, 0), (1, 1))})
    assert len(fifty_million) < 2_000
    with pytest.raises(ValueError) as error:
        state_dict_classifier("resnet18", fifty_million)
    message = str(error.value)
    assert "\n" not in message and "fc.weight" in message and "(50000000, 0)" in message and "(classes, 512)" in message
    assert "100,000" in message
    with pytest.raises(ValueError, match=r"fc.weight \(file \(50000000, 0\), model \(1000, 512\)\)"):
        pretrained_classifier("resnet18", fifty_million)
    # A right-looking shape held by one stored number (a broadcast view) builds nothing either.
    state = build_model("resnet18", num_classes=10).state_dict()
    hollow = {**state, "fc.weight": torch.zeros(1).expand(90_000, 512), "fc.bias": torch.zeros(90_000)}
    with pytest.raises(ValueError, match="fewer numbers stored than the shape needs.*fc.weight"):
        state_dict_classifier("resnet18", crafted_weights(**hollow))
    for bad, shape in ((torch.zeros(512), "(512,)"), (torch.zeros(3, 7), "(3, 7)"), (torch.zeros(0, 512), "(0, 512)")):
        with pytest.raises(ValueError, match=f"fc.weight has shape {re.escape(shape)}; resnet18 expects"):
            state_dict_classifier("resnet18", crafted_weights(**{**state, "fc.weight": bad}))


def test_missing_unexpected_and_odd_tensors_get_one_line(no_large_layer):
    state = tiny_net(num_classes=3).state_dict()
    few = {key: state[key] for key in ("fc.weight", "fc.bias")}
    with pytest.raises(ValueError) as error:
        state_dict_classifier("cifar-resnet8", crafted_weights(**few))
    message = str(error.value)
    assert "\n" not in message and "missing: conv1.weight, bn1.weight, bn1.bias and" in message
    with pytest.raises(ValueError, match="1 unexpected: extra.weight"):
        state_dict_classifier("cifar-resnet8", crafted_weights(**state, **{"extra.weight": torch.zeros(2)}))
    complex_fc = {**state, "fc.weight": state["fc.weight"].to(torch.complex64)}
    with pytest.raises(ValueError, match="not plain real-valued tensors.*fc.weight"):
        state_dict_classifier("cifar-resnet8", crafted_weights(**complex_fc))


def test_uploaded_state_dict_reads_its_class_count(tmp_path):
    model = tiny_net(num_classes=7)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    classifier = state_dict_classifier("cifar-resnet8", tmp_path / "w.pt")
    assert classifier.classes == [f"class {i}" for i in range(7)] and classifier.input_size == 32
    probabilities = explain(classifier, np.zeros((32, 32, 3), np.uint8))[0].predictions
    assert len(probabilities) == 5


@pytest.fixture
def weights_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pretrained_weights_download_into_the_hub_cache(tmp_path, weights_server, monkeypatch):
    root, url = weights_server
    torch.manual_seed(0)
    state = build_model("resnet18").state_dict()
    torch.save(state, root / "weights.tmp")
    digest = hashlib.sha256((root / "weights.tmp").read_bytes()).hexdigest()
    filename = f"resnet18-{digest[:8]}.pth"
    (root / "weights.tmp").rename(root / filename)
    # The real torchvision entry names another file (the real weights); ours is served under our hash.
    fake = SimpleNamespace(url=f"https://download.pytorch.org/models/{filename}",
                           meta=weights_module.pretrained_weights("resnet18").meta)
    monkeypatch.setattr(weights_module, "pretrained_weights", lambda name: fake)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv(weights_module.MIRROR_ENV, url)
    seen = []
    path = weights_module.download_pretrained("resnet18", progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "torch-home" / "hub" / "checkpoints" / filename
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    (root / filename).unlink()  # a second call must use the cache, not the server
    assert weights_module.download_pretrained("resnet18") == path

    classifier = pretrained_classifier("resnet18")
    assert len(classifier.classes) == 1000 and classifier.classes[0] == "tench"
    torch.testing.assert_close(classifier.model.state_dict()["fc.weight"], state["fc.weight"])


def test_pretrained_download_offline_or_corrupt_says_what_to_do(tmp_path, weights_server, monkeypatch):
    root, url = weights_server
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    filename = Path(weights_module.pretrained_weights("resnet18").url).name
    (root / filename).write_bytes(b"not the weights")
    monkeypatch.setenv(weights_module.MIRROR_ENV, url)
    with pytest.raises(ValueError, match="has sha256"):
        weights_module.download_pretrained("resnet18")
    monkeypatch.setenv(weights_module.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(ValueError, match=f"offline: download {filename} elsewhere and upload it"):
        weights_module.download_pretrained("resnet18", timeout=5)
    assert not any((tmp_path / "torch-home").rglob("*.pth*")), "no partial file is left behind"
    with pytest.raises(ValueError, match="torchvision has them for resnet18"):
        weights_module.pretrained_weights("resnet20")


# --- a trained run and the CLI -----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes-r8"
    result = subprocess.run(
        [sys.executable, "-m", "explorer", "train", "--model", "cifar-resnet8", "--dataset", "shapes",
         "--train-size", "256", "--test-size", "64", "--steps", "4", "--batch-size", "32", "--probe-every", "0",
         "--out", str(out), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_run_classifier_uses_the_runs_classes_and_size(trained_run):
    classifier = run_classifier(trained_run)
    assert classifier.input_size == 32 and classifier.classes[:3] == ["circle", "square", "triangle"]
    info = json.loads((trained_run / "data.json").read_text())
    assert info["image_size"] == 32 and len(info["mean"]) == 3
    result = explain(classifier, np.zeros((64, 48, 3), np.uint8), layers="layer3.0")[0]
    assert result.heatmap.shape == (64, 48) and result.layer_size == (8, 8)


def gradcam_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "explorer", "gradcam", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_gradcam_writes_overlay_heatmap_and_json(trained_run, tmp_path):
    image = np.zeros((90, 140, 3), np.uint8)
    image[20:50, 30:80] = (250, 200, 10)
    Image.fromarray(image).save(tmp_path / "photo.png")
    result = gradcam_cli("--image", tmp_path / "photo.png", "--run", trained_run, "--target", "square",
                         "--out", tmp_path / "cam.png", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["layer"] == "layer3" and record["target"] == "square"
    assert len(record["predictions"]) == 5 and {"label", "prob"} <= record["predictions"][0].keys()
    heatmap = np.load(record["heatmap"])
    assert heatmap.shape == (90, 140)
    if record["peak"] is not None:
        assert heatmap[tuple(record["peak"])] == heatmap.max()
    assert Image.open(tmp_path / "cam.png").size == (140, 90)


def test_cli_gradcam_bad_input_is_one_line(trained_run, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("just some text")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "ok.png")
    torch.save({"x": RunsCode()}, tmp_path / "evil.pt")
    MARKER.unlink(missing_ok=True)
    cases = [
        (["--image", tmp_path / "empty.png", "--run", trained_run], "empty"),
        (["--image", tmp_path / "text.png", "--run", trained_run], "not an image"),
        (["--image", tmp_path / "ok.png", "--model", "resnet18", "--weights", tmp_path / "evil.pt"], "refused"),
        (["--image", tmp_path / "ok.png", "--run", trained_run, "--layer", "layer9"], "no layer 'layer9'"),
        (["--image", tmp_path / "ok.png", "--run", trained_run, "--target", "zebra"], "no class named"),
        (["--image", tmp_path / "ok.png"], "either --run DIR or --model NAME"),
    ]
    # The first from the shell, as a user types it (exit status and stderr of a real process); the
    # rest through the same entry point in this process, which saves a torch import per case.
    from explorer.cli import main

    for number, (args, message) in enumerate(cases):
        if number == 0:
            result = gradcam_cli(*args, "--out", tmp_path / "x.png")
            code, stderr = result.returncode, result.stderr
        else:
            capsys.readouterr()
            try:
                code = main(["gradcam", *map(str, args), "--out", str(tmp_path / "x.png")])
            except SystemExit as exit:  # argparse's own refusals
                code = exit.code
            stderr = capsys.readouterr().err
        assert code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, stderr)
    assert not MARKER.exists()
