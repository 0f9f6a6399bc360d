"""The loss landscape (explorer/analysis/landscape.py): the centre and a moved point against an
independent loss computation, filter normalisation, BatchNorm held fixed, seeds shared by plain
and residual twins, gaps for NaN, refusals and the CLI's JSON contract."""

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from explorer.analysis.landscape import (
    filter_normalized_directions,
    fold_batchnorm,
    loss_landscape,
    slice_losses,
    surface_smoothness,
)
from explorer.analysis.lesion import evaluate
from explorer.cli import main
from explorer.models import build_model, seeded_weights
from explorer.train.store import Run
from tests.tiny_runs import TEST_IMAGES, rebuilt, run_config

pytestmark = pytest.mark.usefixtures("one_thread")


def loss_at(model, x, y) -> float:
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def test_the_centre_and_a_moved_point_equal_an_independent_computation(runs):
    result = loss_landscape(runs["cifar-resnet8"], points=3, span=0.5, images=TEST_IMAGES, seed=7)
    model, x, y = rebuilt(runs["cifar-resnet8"])
    assert result["centre_loss"] == pytest.approx(loss_at(model, x, y), rel=1e-5)
    assert result["loss"][1] == result["centre_loss"]
    assert result["axis"] == [-0.5, 0.0, 0.5]
    (direction,) = filter_normalized_directions(model, seed=7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_(direction[name], alpha=0.5)
    assert result["loss"][2] == pytest.approx(loss_at(model, x, y), rel=1e-4)
    assert result["loss"][2] != pytest.approx(result["centre_loss"], rel=1e-3)  # the point did move


def test_directions_are_filter_normalised_and_zero_for_batchnorm(runs):
    model, _, _ = rebuilt(runs["cifar-resnet8"])
    first, second = filter_normalized_directions(model, seed=3, count=2)
    batchnorm = {f"{name}.{kind}" for name, module in model.named_modules()
                 if isinstance(module, torch.nn.BatchNorm2d) for kind in ("weight", "bias")}
    assert batchnorm and batchnorm <= first.keys()
    for name, parameter in model.named_parameters():
        if parameter.ndim <= 1:
            assert not first[name].any() and not second[name].any(), name
            continue
        weight_norms = parameter.detach().flatten(1).norm(dim=1)
        for direction in (first, second):
            assert torch.allclose(direction[name].flatten(1).norm(dim=1), weight_norms, rtol=1e-5), name
        assert not torch.allclose(first[name], second[name])
    again, _ = filter_normalized_directions(model, seed=3, count=2)
    assert all(torch.equal(again[name], first[name]) for name in first)
    other, = filter_normalized_directions(model, seed=4)
    assert not torch.allclose(other["fc.weight"], first["fc.weight"])


def test_same_seed_same_directions_for_plain_and_residual_twins(runs):
    with seeded_weights(0):
        plain = build_model("cifar-plain8", num_classes=5, input_size=16)
    with seeded_weights(0):
        residual = build_model("cifar-resnet8", num_classes=5, input_size=16)
    shapes = [(name, parameter.shape) for name, parameter in plain.named_parameters()]
    assert shapes == [(name, parameter.shape) for name, parameter in residual.named_parameters()]
    (plain_direction,), (residual_direction,) = (filter_normalized_directions(net, seed=5)
                                                 for net in (plain, residual))
    assert all(torch.equal(plain_direction[name], residual_direction[name]) for name, _ in shapes)
    # Trained twins have different weights: the draws are still the same, only the filter norms differ.
    trained = [rebuilt(runs[name])[0] for name in ("cifar-plain8", "cifar-resnet8")]
    directions = [filter_normalized_directions(net, seed=5)[0] for net in trained]
    for name, parameter in trained[0].named_parameters():
        if parameter.ndim > 1:
            unit = [d[name] / d[name].flatten(1).norm(dim=1).view(-1, *[1] * (parameter.ndim - 1)) for d in directions]
            assert torch.allclose(unit[0], unit[1], atol=1e-6), name


def test_a_slice_holds_batchnorm_fixed_and_gives_the_model_back(runs):
    model, x, y = rebuilt(runs["cifar-plain8"], images=16)
    model.train()  # the caller's mode; statistics would move if the slice evaluated in training mode
    before = {key: value.clone() for key, value in model.state_dict().items()}
    directions = filter_normalized_directions(model, seed=0, count=2)
    grid = slice_losses(model, [(x, y)], directions, [-1.0, 0.0, 1.0])
    assert model.training
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())
    assert len(grid["loss"]) == 3 and all(len(row) == 3 for row in grid["loss"])
    with torch.no_grad():
        model.eval()
        assert grid["loss"][1][1] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["cifar-plain8", "cifar-resnet8"])
def test_batchnorm_folded_into_its_convolution_gives_the_same_slice(runs, name):
    model, x, y = rebuilt(runs[name], images=32)
    model.eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    directions = filter_normalized_directions(model, seed=3, count=2)
    centre = evaluate(model, [(x, y)])
    folded, carried = fold_batchnorm(model, directions, [(x, y)], centre)
    assert folded is not model and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())  # a copy
    axis = [-1.0, -0.25, 0.5]
    flat = [loss for row in slice_losses(folded, [(x, y)], carried, axis)["loss"] for loss in row]
    assert flat == pytest.approx([loss for row in slice_losses(model, [(x, y)], directions, axis)["loss"]
                                  for loss in row], rel=1e-5)
    # A folded net that does not give the centre's loss is not used.
    assert fold_batchnorm(model, directions, [(x, y)], (centre[0] * 1.01, centre[1]))[0] is model


def test_a_2d_slice_is_points_by_points(runs):
    done = []
    result = loss_landscape(runs["cifar-plain8"], points=3, dims=2, images=16,
                            progress=lambda d, t: done.append((d, t)))
    assert len(result["loss"]) == 3 and all(len(row) == 3 for row in result["loss"])
    assert len(result["error"]) == 3 and all(len(row) == 3 for row in result["error"])
    assert result["loss"][1][1] == result["centre_loss"]
    assert done[-1] == (9, 9) and result["images"] == 16 and result["dims"] == 2
    assert {"nonconvexity", "local_minima", "max_second_difference"} <= result["smoothness"].keys()


def test_smoothness_measure_on_known_surfaces():
    axis = [i / 10 for i in range(-10, 11)]
    bowl = surface_smoothness([a * a * 3 for a in axis])
    assert bowl["nonconvexity"] == 0 and bowl["local_minima"] == 1
    assert bowl["max_second_difference"] == pytest.approx(8 / 20 ** 2)
    zigzag = surface_smoothness([a * a + (0.5 if i % 2 else 0) for i, a in enumerate(axis)])
    assert zigzag["nonconvexity"] > 0.4 and zigzag["local_minima"] > 5
    surface = surface_smoothness([[a * a + b * b for a in axis] for b in axis])
    assert surface["nonconvexity"] == 0 and surface["local_minima"] == 1
    gaps = surface_smoothness([None, 4.0, 1.0, 0.0, 1.0, float("nan"), None])
    assert gaps["gaps"] == 3 and gaps["local_minima"] == 1 and gaps["nonconvexity"] == 0


def test_refusals(runs, tmp_path):
    empty = Run.create(tmp_path / "no-model", run_config("cifar-resnet8").to_json())
    with pytest.raises(ValueError, match="^no model.pt yet: "):
        loss_landscape(empty.path)
    mlp = Run.create(tmp_path / "mlp", run_config("mlp-residual").to_json())
    shutil.copy(runs["cifar-resnet8"] / "model.pt", mlp.path / "model.pt")
    with pytest.raises(ValueError, match="loss landscape is for the image nets"):
        loss_landscape(mlp.path)
    with pytest.raises(ValueError, match=r"^would take about .* s .*; lower the points or the images$"):
        loss_landscape(runs["cifar-resnet8"], points=41, dims=2, images=8, max_seconds=0.01)
    for bad in ({"points": 2}, {"span": 0}, {"span": float("nan")}, {"dims": 3}):
        with pytest.raises(ValueError):
            loss_landscape(runs["cifar-resnet8"], **bad)


def test_nan_far_from_the_centre_is_null_in_the_cli_json(runs, capsys):
    # 1e38 times a filter-sized direction overflows float32: the losses there are NaN.
    code = main(["landscape", str(runs["cifar-resnet8"]), "--points", "3", "--span", "1e38", "--images", "8",
                 "--device", "cpu", "--json"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    (result,) = json.loads(last, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert result["loss"][0] is None and result["loss"][2] is None
    assert math.isfinite(result["loss"][1]) and result["smoothness"]["gaps"] == 2


def test_cli_json_contract_and_table(runs, capsys):
    code = main(["landscape", str(runs["cifar-resnet8"]), str(runs["cifar-plain8"]), "--points", "5", "--span", "0.4",
                 "--images", "16", "--device", "cpu", "--json"])
    assert code == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [result["model"] for result in results] == ["cifar-resnet8", "cifar-plain8"]
    for result in results:
        assert {"run_dir", "axis", "loss", "images", "seconds"} <= result.keys()
        assert result["axis"][0] == -0.4 and result["axis"][-1] == 0.4 and len(result["loss"]) == 5
        assert result["images"] == 16 and result["seconds"] > 0
    assert main(["landscape", str(runs["cifar-plain8"]), "--points", "3", "--dims", "2", "--images", "8",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "centre loss" in out and "non-convexity" in out and len(out.strip().splitlines()) == 5
    assert main(["landscape", str(runs["cifar-plain8"]), "--points", "41", "--dims", "2", "--max-seconds", "1e-6",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: would take about") and len(err.strip().splitlines()) == 1


@pytest.mark.gpu
def test_on_a_gpu_the_centre_agrees_with_the_cpu(runs):
    cpu = loss_landscape(runs["cifar-resnet8"], points=3, images=32, device="cpu")
    cuda = loss_landscape(runs["cifar-resnet8"], points=3, images=32, device="cuda")
    assert cuda["device"] == "cuda" and cuda["axis"] == cpu["axis"]
    assert cuda["centre_loss"] == pytest.approx(cpu["centre_loss"], rel=1e-2)  # TF32 convolutions on the GPU


def test_the_convex_core_of_a_1d_slice():
    from explorer.analysis.landscape import convex_radius, landscape_reading

    axis = [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert convex_radius(axis, [4.0, 1.0, 0.0, 1.0, 4.0]) == 0.5  # a parabola: convex at every interior point
    assert convex_radius(axis, [1.5, 1.0, 0.0, 1.0, 1.5]) == 0.0  # levels off: convex at the centre only
    assert convex_radius(axis, [0.0, 1.0, 2.0, 1.0, 0.0]) is None  # a peak at the weights
    assert convex_radius(axis, [[0.0] * 5] * 5) is None  # a 2-D slice
    result = {"label": "net", "weights": "final", "centre_loss": 0.0, "axis": [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
              "loss": [2.0, 0.5, 0.0, 0.5, 2.0, 2.5], "model": "cifar-resnet20",
              "smoothness": {"nonconvexity": 0.2, "local_minima": 1, "gaps": 0}}
    assert "convex within |a| <= 0.50 of its weights" in landscape_reading([result])[0]
