"""Complexity measurements against hand-derived formulas, torchvision's figures and the paper."""

import json

import pytest
import torch
import torchvision
from torch import nn

from explorer.analysis import complexity
from explorer.analysis.architecture import describe_blocks, layer_table, network_diagram
from explorer.analysis.complexity import comparison_rows, measure, parse_batch_sizes, time_forward
from explorer.models import cost
from explorer.models.cost import ModelTooLarge, check_fits, estimate_memory, profile_forward
from explorer.paper import paper_tables

TABLE1 = paper_tables()["table1_macs"]["gmacs"]


@pytest.mark.parametrize("name", ["vgg19", "plain34", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_macs_within_2_5_percent_of_table_1(name):
    result = measure(name)
    # Bottleneck nets with the paper's stride placement; the others as they are.
    macs = result.macs_paper_bottleneck or result.macs
    assert abs(macs / 1e9 - TABLE1[name]) / TABLE1[name] <= 0.025
    assert result.paper_macs == TABLE1[name] * 1e9


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vgg19"])
def test_macs_match_torchvisions_published_figures(name):
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    # torchvision's "_ops" are GMACs at 224x224, rounded to 3 decimals, for its own (3x3-stride) bottleneck.
    assert round(measure(name).macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=0.0015)


def _cifar_resnet_macs(n: int) -> int:
    """Hand-derived: 3x3 convs on 32, 16 and 8 pixel maps, the strided first conv of stages 2 and 3."""
    per_conv = 32 * 32 * 16 * 16 * 9  # = 16*16*32*32*9 = 8*8*64*64*9: equal cost in every stage
    strided = 16 * 16 * 16 * 32 * 9  # half the cost of a full conv of its stage
    stem = 32 * 32 * 3 * 16 * 9
    return stem + 2 * n * per_conv + 2 * (strided + (2 * n - 1) * per_conv) + 64 * 10


@pytest.mark.parametrize("n", [1, 3, 9, 18])
def test_cifar_macs_match_the_hand_derived_formula(n):
    depth = 6 * n + 2
    assert measure(f"cifar-resnet{depth}").macs == _cifar_resnet_macs(n)
    # Option B adds the two strided 1x1 projections.
    projections = 16 * 16 * 16 * 32 + 8 * 8 * 32 * 64
    assert measure(f"cifar-resnet{depth}", shortcut="B").macs == _cifar_resnet_macs(n) + projections


class _Tiny(nn.Module):
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


def test_activation_memory_counts_what_autograd_saves_once():
    model = _Tiny().eval()
    profile = profile_forward(model, model.input_shape)
    # The conv keeps its input (3x8x8 floats) for the weight gradient; ReLU keeps its output (4x8x8).
    assert profile.activation_bytes == (3 * 64 + 4 * 64) * 4
    # The largest layer: ReLU reads and writes 4x8x8 floats.
    assert profile.inference_peak_bytes == 2 * 4 * 64 * 4
    assert profile.macs == 8 * 8 * 4 * 3 * 9 and profile.params == 4 * 3 * 9
    assert not model.training  # the caller's mode is restored


def test_activation_memory_predicts_real_saved_bytes():
    """The meta-device count equals the bytes of the tensors a real CPU forward pass saves, per image."""
    model = complexity.build_model("cifar-resnet20")
    saved = {}
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in parameters:
            saved[pointer] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(cost.TRACE_BATCH, 3, 32, 32))
    assert measure("cifar-resnet20").activation_bytes_per_image == sum(saved.values()) // cost.TRACE_BATCH


def test_memory_estimate_and_refusal_before_allocation(monkeypatch):
    estimate = estimate_memory("cifar-resnet56", 128, training=True)
    profile = cost.profile_named("cifar-resnet56")
    assert estimate.parameter_bytes == 853_018 * 4 * 3
    assert estimate.activation_bytes == profile.activation_bytes * 128
    monkeypatch.setattr(cost, "available_memory_bytes", lambda device: 64 * 2**20)

    def no_real_model(*args, **kwargs):
        raise AssertionError("a real model was built before the memory check")

    monkeypatch.setattr(complexity, "build_model", no_real_model)
    with pytest.raises(ModelTooLarge, match=r"cifar-resnet56 at batch 128 needs about .* but cpu has 64.0 MiB free"):
        check_fits("cifar-resnet56", 128, "cpu")
    with pytest.raises(ModelTooLarge):
        time_forward("cifar-resnet56", [1, 4096], "cpu")


@pytest.mark.parametrize("text,error", [("0", "from 1 to"), ("1,x", "whole numbers"), ("", "at least one"),
                                        ("100000000", "from 1 to")])
def test_bad_batch_sizes_are_refused(text, error):
    with pytest.raises(ValueError, match=error):
        parse_batch_sizes(text)


def test_parse_batch_sizes_sorts_and_deduplicates():
    assert parse_batch_sizes("32, 1,32") == [1, 32]


def test_time_forward_measures_each_batch_size():
    timings = time_forward("cifar-resnet20", [1, 8], "cpu", warmup=1, repeats=2)
    assert set(timings) == {1, 8} and all(ms > 0 for ms in timings.values())
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_forward("cifar-resnet20", [1], "cpu", repeats=0)


def test_comparison_rows_put_ours_beside_the_paper():
    rows = {row["model"]: row for row in comparison_rows([measure("resnet50"), measure("cifar-resnet20")])}
    assert rows["resnet50"]["paper_gmacs"] == 3.8
    assert rows["resnet50"]["gmacs_diff"] == pytest.approx(rows["resnet50"]["gmacs"] / 3.8 - 1)
    assert rows["resnet50"]["gmacs_paper_bottleneck"] < rows["resnet50"]["gmacs"]
    assert rows["cifar-resnet20"]["paper_params"] == 270_000
    assert abs(rows["cifar-resnet20"]["params_diff"]) < 0.01


def test_layer_table_reads_like_table_1():
    rows = layer_table("resnet50")
    assert [row.stage for row in rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "pool, fc"]
    assert [row.output_size for row in rows[:5]] == ["56x56", "56x56", "28x28", "14x14", "7x7"]
    assert [row.blocks for row in rows[1:5]] == [3, 4, 6, 3]
    assert rows[1].layers == "[1x1, 64; 3x3, 64; 1x1, 256]"
    assert sum(row.params for row in rows) == 25_557_032
    cifar = layer_table("cifar-plain56")
    assert [row.output_size for row in cifar[1:4]] == ["32x32", "16x16", "8x8"]
    assert [row.blocks for row in cifar[1:4]] == [9, 9, 9]
    assert sum(row.params for row in layer_table("vgg19")) == 143_667_240


def test_diagram_draws_shortcuts_only_for_residual_nets():
    residual = network_diagram("cifar-resnet20")
    assert len(residual.arcs) == 9
    assert [arc.kind for arc in residual.arcs].count("pad") == 2
    assert [arc.kind for arc in network_diagram("cifar-resnet20", shortcut="B").arcs].count("projection") == 2
    assert network_diagram("cifar-plain20").arcs == []
    deep = network_diagram("cifar-resnet1202", max_blocks_per_stage=6)
    gaps = [layer for layer in deep.layers if layer.kind == "gap"]
    assert len(gaps) == 3 and all(gap.hidden_blocks == 195 for gap in gaps)
    assert describe_blocks("cifar-plain20") == "9 basic blocks without shortcuts (plain)"
    assert describe_blocks("resnet50") == "16 bottleneck blocks with shortcuts (option B)"


def test_counts_are_written_in_the_unit_that_fits_them():
    from explorer.models.cost import format_count

    # An MLP of the playground is thousands of multiply-adds, not "0.00 M".
    assert format_count(measure("mlp-plain").macs).endswith(" K")
    assert [format_count(n) for n in (999, 12_800, 40_550_000, 4.09e9)] == ["999", "12.8 K", "40.55 M", "4.09 G"]


def test_traced_profiles_are_kept_on_disk_keyed_on_the_code(monkeypatch, tmp_path):
    monkeypatch.setenv(cost.PROFILE_CACHE_ENV, str(tmp_path))
    cost._profile_named.cache_clear()
    traced = cost.profile_named("cifar-resnet20", input_size=16)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith(cost._code_version())

    # A new process (an empty memory cache) reads it back instead of tracing again.
    cost._profile_named.cache_clear()

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced although the profile was on disk")

    monkeypatch.setattr(cost, "profile_forward", no_tracing)
    assert cost.profile_named("cifar-resnet20", input_size=16) == traced
    # Another model, or the same with other options, is not mistaken for it.
    cost._profile_named.cache_clear()
    with pytest.raises(AssertionError, match="traced although"):
        cost.profile_named("cifar-resnet20", input_size=32)
    monkeypatch.undo()

    # A damaged file is traced again and rewritten; "off" keeps nothing on disk.
    monkeypatch.setenv(cost.PROFILE_CACHE_ENV, str(tmp_path))
    files[0].write_text("{not json")
    cost._profile_named.cache_clear()
    assert cost.profile_named("cifar-resnet20", input_size=16) == traced
    assert json.loads(files[0].read_text())["macs"] == traced.macs
    monkeypatch.setenv(cost.PROFILE_CACHE_ENV, "off")
    cost._profile_named.cache_clear()
    assert cost.profile_named("cifar-resnet20", input_size=32).macs > traced.macs  # traced, not written
    assert len(list(tmp_path.glob("*.json"))) == 1
    cost._profile_named.cache_clear()


def test_measure_if_ready_never_traces(monkeypatch, tmp_path):
    """The Complexity page shows only what is measured and never waits for a trace itself."""
    monkeypatch.setenv(cost.PROFILE_CACHE_ENV, str(tmp_path))
    cost._profile_named.cache_clear()
    monkeypatch.setattr(cost, "_traced", {})
    assert complexity.measure_if_ready("cifar-resnet20") is None
    assert not list(tmp_path.glob("*.json"))  # asking traced nothing
    measure("resnet50")  # what the background warm-up does: both stride placements
    assert complexity.measure_if_ready("resnet50") == measure("resnet50")
    cost._profile_named.cache_clear()
    monkeypatch.setattr(cost, "_traced", {})  # a new process: from the disk cache, still without tracing
    monkeypatch.setattr(cost, "profile_forward", lambda *a, **k: pytest.fail("traced"))
    assert complexity.measure_if_ready("resnet50").macs_paper_bottleneck < complexity.measure_if_ready("resnet50").macs
    cost._profile_named.cache_clear()


def test_scatter_labels_of_nearby_models_go_to_different_sides():
    from explorer.figures import macs_vs_params_figure

    rows = [{"model": name, "params": params, "gmacs": gmacs, "paper_gmacs": None} for name, params, gmacs in (
        ("plain34", 21.6e6, 3.64), ("resnet18", 11.7e6, 1.81), ("resnet34", 21.8e6, 3.66), ("resnet50", 25.6e6, 4.09))]
    positions = dict(zip([row["model"] for row in rows], macs_vs_params_figure(rows).data[0].textposition))
    assert positions["resnet18"] == "middle right"  # alone
    assert len({positions[name] for name in ("plain34", "resnet34", "resnet50")}) == 3
