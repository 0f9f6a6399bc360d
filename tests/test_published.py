"""The published converged CIFAR-10 ResNets (issue 20): files in the published layout made here, the
strict mapping onto cifar-resnet{D}, the hash in the name, the download from a local server, the
offline message, and `pretrained:...` wherever a run folder is taken.

No test needs the network: each writes files in the layout of akamaster/pytorch_resnet_cifar10's
``pretrained_models/resnet{D}-{hash}.th`` (a DataParallel ``module.`` prefix, ``linear.*``, the
``{'best_prec1', 'state_dict'}`` wrapper, no BatchNorm counters, the legacy serialisation). Their
``cuda:0`` storage tags cannot be written on a machine without CUDA; ``map_location="cpu"`` is what
reads them, and bench/pretrained_cifar.py loads the real files.
"""

import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.analysis.evaluate import evaluate_run, evaluation_reading, layer_responses
from explorer.analysis.runs import converged_responses, response_summary, responses_reading
from explorer.cli import main
from explorer.models import build_model
from explorer.models import published as published_module
from explorer.models.published import (
    CIFAR10_CLASSES,
    MEAN,
    PUBLISHED,
    STD,
    download_published,
    load_published,
    published_model,
    published_net,
)
from explorer.train.pretrained import folder_for, pretrained_run, resolve_run_dir
from tests.published_files import cifar_folder, in_cache, publish, published_bytes


def test_the_real_files_names_and_the_paper_numbers():
    assert [net.depth for net in PUBLISHED.values()] == [20, 32, 44, 56, 110, 1202]
    for net in PUBLISHED.values():
        assert net.file_name.startswith(f"resnet{net.depth}-") and len(net.file_name) == len(f"resnet{net.depth}-") + 11
    assert (PUBLISHED[56].published_error, PUBLISHED[56].paper_error) == (0.0661, 0.0697)
    assert (MEAN, STD) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageNet's, as those nets were trained


@pytest.mark.parametrize("legacy", [True, False])
def test_a_published_layout_file_loads_strictly_and_computes_the_same_function(hub, monkeypatch, legacy):
    torch.manual_seed(3)
    original = build_model("cifar-resnet20").eval()
    for module in original.modules():  # trained-looking BN statistics, so that a missed key would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    data = published_bytes(original, legacy=legacy)
    net = publish(monkeypatch, 20, data, hub)
    in_cache(net, data)
    model = load_published("pretrained:cifar-resnet20")
    assert not model.training
    for key, value in original.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[key], value), key
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(images), original(images), atol=1e-6)


def test_the_deepest_layout_maps_the_same_way(hub, monkeypatch):
    """ResNet-110's file is not in the fetched copy; its layout is the same, built here."""
    torch.manual_seed(0)
    original = build_model("cifar-resnet110").eval()
    data = published_bytes(original)
    net = publish(monkeypatch, 110, data, hub)
    model = published_model(net, data)
    assert torch.equal(model.fc.weight, original.fc.weight)
    assert torch.equal(model.layer3[17].bn2.running_var, original.layer3[17].bn2.running_var)


def test_another_nets_file_is_refused_naming_the_first_key_that_does_not_fit(hub, monkeypatch):
    data = published_bytes(build_model("cifar-resnet20", num_classes=100))
    net = publish(monkeypatch, 20, data, hub)
    with pytest.raises(ValueError, match=r"do not fit cifar-resnet20: 2 of another shape: fc.weight \(file \(100, 64\)"):
        published_model(net, data)
    deeper = published_bytes(build_model("cifar-resnet32"))
    with pytest.raises(ValueError, match="unexpected: layer1.3"):
        published_model(net, deeper)
    missing = published_bytes(build_model("cifar-resnet20"), drop="layer2.1.bn1.running_mean")
    with pytest.raises(ValueError, match="missing: layer2.1.bn1.running_mean"):
        published_model(net, missing)


def test_a_depth_without_published_weights_is_one_line_naming_the_six():
    with pytest.raises(ValueError) as refused:
        published_net("pretrained:cifar-resnet8")
    message = str(refused.value)
    assert "\n" not in message and "'cifar-resnet8'" in message
    assert all(f"pretrained:cifar-resnet{depth}" in message for depth in (20, 32, 44, 56, 110, 1202))
    for bad in ("pretrained:cifar-plain20", "pretrained:resnet50", "pretrained:"):
        with pytest.raises(ValueError, match="no published converged weights"):
            published_net(bad)


class _Server:
    """A local HTTP server for the published files: what each path answers is set by the test."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        files, truncate = self.files, self.truncate

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                name = self.path.rsplit("/", 1)[-1]
                if name not in files:
                    self.send_error(404)
                    return
                body = files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in truncate else body)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pretrained_models"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    serving = _Server()
    monkeypatch.setenv(published_module.URL_ENV, serving.url)
    yield serving
    serving.close()


def test_downloaded_on_first_use_into_the_hub_cache_under_its_own_name(hub, monkeypatch, server):
    data = published_bytes(build_model("cifar-resnet20"))
    served = hub / "served"
    served.mkdir()
    net = publish(monkeypatch, 20, data, served)
    server.files[net.file_name] = data
    seen = []
    path = download_published(net, progress=lambda done, total: seen.append((done, total)))
    assert path == hub / "torch-home" / "hub" / "checkpoints" / net.file_name
    assert path.read_bytes() == data and seen[-1] == (len(data), len(data))
    server.files.clear()  # the second time from the cache: the server is not asked
    assert download_published(net) == path


def test_a_download_that_does_not_match_its_hash_or_stops_short_leaves_nothing(hub, monkeypatch, server):
    data = published_bytes(build_model("cifar-resnet20"))
    net = publish(monkeypatch, 20, data, hub)
    server.files[net.file_name] = data[:-10] + b"0123456789"  # another file under the published name
    with pytest.raises(ValueError, match="has sha256 .* expected"):
        download_published(net)
    checkpoints = hub / "torch-home" / "hub" / "checkpoints"
    assert not any(checkpoints.iterdir())
    server.files[net.file_name] = data
    server.truncate.add(net.file_name)
    with pytest.raises(ValueError):
        download_published(net)
    assert not any(checkpoints.iterdir()), "a truncated download left a file behind"


def test_a_cached_file_whose_hash_does_not_match_its_name_is_deleted_not_loaded(hub, monkeypatch):
    data = published_bytes(build_model("cifar-resnet20"))
    net = publish(monkeypatch, 20, data, hub)
    path = in_cache(net, published_bytes(build_model("cifar-resnet20", num_classes=10)) + b"tampered")
    with pytest.raises(ValueError, match="deleted, not loaded"):
        load_published("pretrained:cifar-resnet20")
    assert not path.exists()


def test_offline_the_message_names_the_file_where_to_get_it_and_where_to_put_it(hub, capsys):
    assert main(["evaluate", "pretrained:cifar-resnet56", "--json"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and message.startswith("error: could not download the published cifar-resnet56")
    assert "resnet56-4bfd9763.th" in message and "github.com/akamaster/pytorch_resnet_cifar10" in message
    assert str(hub / "torch-home" / "hub" / "checkpoints") in message


def test_pretrained_becomes_a_run_folder_evaluated_with_imagenet_normalisation(published_pair):
    model, folder = published_pair
    run_dir = resolve_run_dir("pretrained:cifar-resnet20", f"folder:{folder}")
    assert Path(run_dir) == folder_for("pretrained:cifar-resnet20", f"folder:{folder}")
    data = json.loads((Path(run_dir) / "data.json").read_text())
    assert data["mean"] == list(MEAN) and data["classes"] == list(CIFAR10_CLASSES)
    result = evaluate_run(run_dir, device="cpu")
    # The same error by hand: the folder's test images in order, normalised with ImageNet's mean and std.
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for file in sorted((folder / "test" / name).iterdir()):
            images.append(np.asarray(Image.open(file)))
            labels.append(label)
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        wrong = (model(x).argmax(1) != torch.tensor(labels)).float().mean().item()
    assert result["images"] == 30 and result["error"] == pytest.approx(wrong)
    assert result["published_error"] == PUBLISHED[20].published_error and not result["notes"]
    # The same folder again: the run folder is reused, not made anew.
    stamp = (Path(run_dir) / "model.pt").stat().st_mtime_ns
    assert pretrained_run("pretrained:cifar-resnet20", f"folder:{folder}") == Path(run_dir)
    assert (Path(run_dir) / "model.pt").stat().st_mtime_ns == stamp


def test_a_folder_of_other_classes_or_another_data_set_is_refused(published_pair, hub, capsys):
    other = cifar_folder(hub / "other", per_class=1, classes=("cat", "dog"))
    with pytest.raises(ValueError, match="knows the classes airplane, .*its test set .* has cat, dog"):
        evaluate_run(resolve_run_dir("pretrained:cifar-resnet20", f"folder:{other}"), device="cpu")
    assert main(["evaluate", "pretrained:cifar-resnet20", "--dataset", "shapes"]) == 2
    assert "the published nets were trained on CIFAR-10" in capsys.readouterr().err


def test_cli_evaluate_lesion_landscape_and_gradcam_take_pretrained(published_pair, hub, capsys):
    _, folder = published_pair
    dataset = ["--dataset", f"folder:{folder}"]
    assert main(["evaluate", "pretrained:cifar-resnet20", *dataset, "--images", "20", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["run"] == "pretrained:cifar-resnet20" and record["model"] == "cifar-resnet20"
    assert record["images"] == 20 and 0 <= record["error"] <= 1
    assert main(["lesion", "pretrained:cifar-resnet20", *dataset, "--images", "20", "--blocks", "1", "--draws", "1",
                 "--json"]) == 0
    [study] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert study["label"] == "cifar-resnet20 · converged (published weights)" and len(study["blocks"]) == 9
    assert main(["landscape", "pretrained:cifar-resnet20", *dataset, "--points", "3", "--images", "20",
                 "--json"]) == 0
    [slice_] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(slice_["loss"]) == 3
    image = hub / "cat.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(image)
    assert main(["gradcam", "--image", str(image), "--run", "pretrained:cifar-resnet20", "--out",
                 str(hub / "cam.png"), "--json"]) == 0
    cam = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {prediction["label"] for prediction in cam["predictions"]} <= set(CIFAR10_CLASSES)
    assert np.load(hub / "cam.npy").shape == (40, 50)
    # A run folder with --dataset: that is for pretrained nets, said in one line.
    assert main(["evaluate", str(hub), "--dataset", "cifar10"]) == 2
    assert "--dataset is for pretrained:" in capsys.readouterr().err


def test_the_readings_say_what_was_measured(published_pair):
    _, folder = published_pair
    run_dir = resolve_run_dir("pretrained:cifar-resnet20", f"folder:{folder}")
    result = evaluate_run(run_dir, device="cpu")
    [line] = evaluation_reading([result])
    assert f"{100 * result['error']:.2f}% on the first 30 test images" in line
    assert "from the published figure (8.27%)" in line and "from the paper's Table 6 (8.75%)" in line
    close = {**result, "error": 0.083, "images": 10_000}
    assert "within sampling error" in evaluation_reading([close])[0]
    far = {**result, "error": 0.20, "images": 10_000}
    assert "higher by more than sampling error" in evaluation_reading([far])[0]

    measured = layer_responses(run_dir, images=30, device="cpu")
    assert len(measured["layers"]) == 19 and measured["mean_std"] > 0  # the stem and 2 per block
    rows = response_summary([converged_responses(measured)])
    assert rows[0]["at"] == "final weights" and rows[0]["model"] == "cifar-resnet20"
    deeper = {**rows[0], "run": "ResNet-56", "model": "cifar-resnet56", "mean_std": rows[0]["mean_std"] / 2}
    plain = {**rows[0], "run": "plain-20", "model": "cifar-plain20", "residual": False,
             "mean_std": rows[0]["mean_std"] * 2}
    lines = responses_reading([rows[0], deeper, plain])
    assert any("smaller, as the paper reads Fig. 7" in line for line in lines)
    assert any("each deeper one smaller" in line for line in lines)
    assert any("not smaller with each step" in line
               for line in responses_reading([rows[0], {**deeper, "mean_std": rows[0]["mean_std"] * 3}]))
