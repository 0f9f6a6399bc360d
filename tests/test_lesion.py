"""The lesion study (explorer/analysis/lesion.py) against hand-built forwards, and its CLI contract.

Oracles: a deleted block is checked against a forward pass written out by hand (the branch left
out, the shortcut computed from its definition, not from the module), and the study's errors
against errors computed from that hand-built forward on a test set loaded independently.
"""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.analysis.lesion import deleted_blocks, final_activation, lesion_study, weights_description
from explorer.cli import main
from explorer.models import build_model, seeded_weights
from explorer.models.blocks import Bottleneck
from explorer.train.store import Run
from tests.tiny_runs import TEST_IMAGES, rebuilt, run_config

pytestmark = pytest.mark.usefixtures("one_thread")


def option_a(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Option A by its definition: every other position, the new channels zero, half on each side."""
    x = x[:, :, ::2, ::2]
    extra = out_channels - x.shape[1]
    zeros = x.new_zeros(x.shape[0], extra // 2, *x.shape[2:])
    return torch.cat([zeros, x, x.new_zeros(x.shape[0], extra - extra // 2, *x.shape[2:])], dim=1)


def shortcut_by_hand(block, x):
    changes_shape = block.conv1.stride != (1, 1) or block.conv1.in_channels != block.conv2.out_channels
    if isinstance(block.shortcut, nn.Sequential):  # a projection: 1x1 conv and BN
        conv, bn = block.shortcut
        return bn(F.conv2d(x, conv.weight, stride=conv.stride))
    return option_a(x, block.conv2.out_channels) if changes_shape else x


def hand_forward(model, x, deleted=()):
    """A CIFAR net's forward, written out, with the blocks ``deleted`` reduced to their shortcut."""
    preact = model.preact
    x = model.conv1(x)
    if not preact:
        x = F.relu(model.bn1(x))
    for stage in ("layer1", "layer2", "layer3"):
        for index, block in enumerate(getattr(model, stage)):
            if f"{stage}.{index}" not in deleted:
                x = block(x)
            elif block.shortcut is not None:
                x = shortcut_by_hand(block, x) if preact else F.relu(shortcut_by_hand(block, x))
            # a deleted plain block is the identity: x stays
    if preact:
        x = F.relu(model.bn_final(x))
    return model.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def same(actual, expected):
    """Equal up to float rounding: the same arithmetic, but a tensor's memory layout (channels-last or
    not) may pick another convolution kernel, which differs in the last bits (2e-7 seen)."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def error_of(logits, labels) -> float:
    return (logits.argmax(1) != labels).float().mean().item()


def hooks_left(model) -> int:
    return sum(len(module._forward_hooks) + len(module._forward_pre_hooks) for module in model.modules())


@pytest.mark.parametrize("deleted", [("layer2.0",), ("layer1.0",), ("layer1.0", "layer3.0")])
def test_deleting_residual_blocks_gives_the_hand_built_logits(runs, deleted):
    model, x, _ = rebuilt(runs["cifar-resnet8"])
    with torch.no_grad():
        intact = model(x)
        with deleted_blocks(model, deleted):
            lesioned = model(x)
        expected = hand_forward(model, x, deleted)
    same(lesioned, expected)
    assert not torch.allclose(lesioned, intact)  # the deletion did something


def test_a_plain_block_is_replaced_by_the_identity_and_a_shape_changing_one_refused(runs):
    model, x, _ = rebuilt(runs["cifar-plain8"])
    with torch.no_grad():
        with deleted_blocks(model, ["layer1.0"]):
            lesioned = model(x)
        same(lesioned, hand_forward(model, x, {"layer1.0"}))
        with pytest.raises(ValueError, match="changes the shape"), deleted_blocks(model, ["layer2.0"]):
            model(x)
    assert hooks_left(model) == 0


@pytest.mark.parametrize("name,options,deleted", [
    ("cifar-preact-resnet8", {}, ("layer2.0",)),  # pre-activation: the output is the shortcut, no ReLU
    ("cifar-preact-resnet8", {}, ("layer1.0", "layer3.0")),
    ("cifar-resnet8", {"shortcut": "B"}, ("layer2.0",)),  # a projection shortcut, then the block's ReLU
    ("cifar-resnet8", {"shortcut": "C"}, ("layer1.0",)),  # a projection that keeps the shape
])
def test_other_block_kinds_against_hand_built_forwards(name, options, deleted):
    with seeded_weights(1):
        model = build_model(name, num_classes=5, input_size=16, **options).eval()
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad(), deleted_blocks(model, deleted):
        lesioned = model(x)
    same(lesioned, hand_forward(model, x, deleted))


def test_a_bottleneck_deleted_is_the_relu_of_its_shortcut():
    block = Bottleneck(64, 16, 1, nn.Identity()).eval()
    assert final_activation(block) is block.act3
    x = torch.randn(2, 64, 4, 4)
    with torch.no_grad(), deleted_blocks(nn.Sequential(block), ["0"]) as model:
        assert torch.equal(model(x), F.relu(x))


def test_hooks_are_removed_also_on_error(runs):
    model, x, _ = rebuilt(runs["cifar-resnet8"])
    with torch.no_grad():
        before = model(x)
        with deleted_blocks(model, ["layer1.0", "layer2.0"]):
            assert hooks_left(model) == 2
        assert hooks_left(model) == 0
        with pytest.raises(RuntimeError, match="boom"), deleted_blocks(model, ["layer3.0"]):
            raise RuntimeError("boom")
        with pytest.raises(ValueError, match="not a block"), deleted_blocks(model, ["layer1.0", "fc"]):
            pass
        assert hooks_left(model) == 0
        assert torch.equal(model(x), before)


def test_the_study_matches_errors_from_the_hand_built_forward(runs):
    result = lesion_study(runs["cifar-resnet8"], images=TEST_IMAGES, draws=4, seed=3)
    model, x, y = rebuilt(runs["cifar-resnet8"])
    with torch.no_grad():
        assert result["baseline_error"] == pytest.approx(error_of(model(x), y))
        for block in result["blocks"]:
            assert block["deletable"]
            assert block["error"] == pytest.approx(error_of(hand_forward(model, x, {block["name"]}), y))
        everything = error_of(hand_forward(model, x, {"layer1.0", "layer2.0", "layer3.0"}), y)
    assert [(block["name"], block["kind"]) for block in result["blocks"]] == [
        ("layer1.0", "identity"), ("layer2.0", "downsampling"), ("layer3.0", "downsampling")]
    singles = [block["error"] for block in result["blocks"]]
    first, *_, last = result["random_deletions"]
    assert [row["k"] for row in result["random_deletions"]] == [1, 2, 3]
    assert min(singles) <= first["mean_error"] <= max(singles)
    assert last["mean_error"] == pytest.approx(everything) and last["std_error"] == 0  # only one set of 3
    assert result["images"] == TEST_IMAGES and result["weights"] == "final (step 30)"
    assert result["mean_single_increase"] == pytest.approx(sum(singles) / 3 - result["baseline_error"])
    assert hooks_left(model) == 0


def test_a_plain_nets_shape_changing_blocks_are_not_deletable(runs):
    done = []
    result = lesion_study(runs["cifar-plain8"], images=32, draws=2, progress=lambda d, t: done.append((d, t)))
    kinds = {block["name"]: block for block in result["blocks"]}
    assert kinds["layer1.0"]["deletable"] and kinds["layer1.0"]["kind"] == "plain"
    for name in ("layer2.0", "layer3.0"):
        assert not kinds[name]["deletable"] and kinds[name]["error"] is None
        assert "changes shape" in kinds[name]["kind"]
    assert [row["k"] for row in result["random_deletions"]] == [1]
    assert done[0] == (0, 2) and done[-1] == (2, 2)  # baseline and layer1.0; the draws repeat layer1.0
    with pytest.raises(ValueError, match="more than the 1 deletable"):
        lesion_study(runs["cifar-plain8"], blocks=2, images=8)


def test_a_run_still_training_is_studied_at_its_latest_checkpoint(runs, tmp_path):
    copy = tmp_path / "still-training"
    shutil.copytree(runs["cifar-resnet8"], copy)
    run = Run(copy)
    run.set_status("running", "step 25 of 30", step=25, total_steps=30, checkpoint_step=20)  # owned by this process
    assert weights_description(run) == "latest checkpoint at step 20 of 30 (still training)"
    assert lesion_study(copy, images=8, draws=1)["weights"] == "latest checkpoint at step 20 of 30 (still training)"


def test_refusals(runs, tmp_path):
    empty = Run.create(tmp_path / "no-model", run_config("cifar-resnet8").to_json())
    with pytest.raises(ValueError, match="^no model.pt yet: "):
        lesion_study(empty.path)
    mlp = Run.create(tmp_path / "mlp", run_config("mlp-plain").to_json())
    shutil.copy(runs["cifar-resnet8"] / "model.pt", mlp.path / "model.pt")
    with pytest.raises(ValueError, match="lesion study is for the image nets"):
        lesion_study(mlp.path)
    with pytest.raises(ValueError, match="not a run folder"):
        lesion_study(tmp_path)
    with pytest.raises(ValueError, match="images must be"):
        lesion_study(runs["cifar-resnet8"], images=0)


def test_cli_json_contract(runs, capsys):
    code = main(["lesion", str(runs["cifar-resnet8"]), str(runs["cifar-plain8"]), "--images", "32", "--draws", "2",
                 "--device", "cpu", "--json"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    results = json.loads(last, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert [result["model"] for result in results] == ["cifar-resnet8", "cifar-plain8"]
    for result in results:
        assert {"run_dir", "baseline_error", "blocks", "random_deletions"} <= result.keys()
        assert all({"name", "deletable", "error"} <= block.keys() for block in result["blocks"])
        assert all({"k", "mean_error", "std_error"} <= row.keys() for row in result["random_deletions"])
    assert results[0]["run_dir"] == str(runs["cifar-resnet8"])


def test_cli_table_and_bad_input(runs, capsys):
    assert main(["lesion", str(runs["cifar-plain8"]), "--images", "16", "--draws", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0" in out and "changes shape" in out and "random deletions" in out
    assert main(["lesion", str(runs["cifar-plain8"]), "--blocks", "3", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
