"""The model zoo against the paper's and torchvision's numbers."""

import pickle
import re

import pytest
import torch
import torchvision
from torch import nn

from explorer.models import build_model, model_names, resolve
from explorer.models import cifar as cifar_module
from explorer.models import imagenet as imagenet_module
from explorer.models.blocks import Block, PadShortcut, Projection
from explorer.models.mode import evaluating, in_mode

# The exact counts (10 classes for CIFAR, 1000 for ImageNet and VGG).
EXACT_PARAMS = {
    "cifar-resnet20": 269_722, "cifar-resnet32": 464_154, "cifar-resnet44": 658_586, "cifar-resnet56": 853_018,
    "cifar-resnet110": 1_727_962, "cifar-resnet1202": 19_421_274,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "vgg16": 138_357_544, "vgg19": 143_667_240,
}


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta(name, **options):
    with torch.device("meta"):
        return build_model(name, **options)


@pytest.mark.parametrize("name,count", EXACT_PARAMS.items())
def test_exact_parameter_counts(name, count):
    assert params(meta(name)) == count


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
def test_plain_twin_has_identical_parameters_with_option_a(depth):
    assert params(meta(f"cifar-plain{depth}")) == EXACT_PARAMS[f"cifar-resnet{depth}"]


@pytest.mark.parametrize("plain,residual,options", [
    ("cifar-plain20", "cifar-resnet20", {}),
    ("cifar-plain56", "cifar-resnet56", {"shortcut": "B"}),
    ("plain34", "resnet34", {}),
    ("plain50", "resnet50", {"shortcut": "C"}),
])
def test_twins_differ_only_in_shortcuts(plain, residual, options):
    plain_model, residual_model = meta(plain), meta(residual, **options)
    shortcut_key = re.compile(r"\.(shortcut|downsample)(\.|$)")
    plain_modules = {name: type(m) for name, m in plain_model.named_modules()}
    residual_modules = {name: type(m) for name, m in residual_model.named_modules() if not shortcut_key.search(name)}
    assert plain_modules == residual_modules
    plain_shapes = {k: v.shape for k, v in plain_model.state_dict().items()}
    residual_shapes = {k: v.shape for k, v in residual_model.state_dict().items() if not shortcut_key.search(k)}
    assert plain_shapes == residual_shapes
    blocks = [m for m in residual_model.modules() if isinstance(m, Block)]
    assert blocks and all(block.is_residual for block in blocks)
    assert not any(block.is_residual for block in plain_model.modules() if isinstance(block, Block))


def test_option_a_twins_start_from_the_same_weights_and_differ_in_output():
    torch.manual_seed(1)
    plain = build_model("cifar-plain20")
    torch.manual_seed(1)
    residual = build_model("cifar-resnet20")
    for (key_a, a), (key_b, b) in zip(plain.state_dict().items(), residual.state_dict().items()):
        assert key_a == key_b and torch.equal(a, b)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(plain.eval()(x), residual.eval()(x))


def _projection_params(in_c, out_c):
    return in_c * out_c + 2 * out_c  # 1x1 conv without bias, BN weight and bias


def test_shortcut_options_b_and_c_add_the_projections_the_paper_describes():
    base = EXACT_PARAMS["cifar-resnet20"]
    option_b = base + _projection_params(16, 32) + _projection_params(32, 64)
    assert params(meta("cifar-resnet20", shortcut="B")) == option_b == 272_474
    # C: a projection on every one of the 9 blocks.
    option_c = base + 3 * _projection_params(16, 16) + _projection_params(16, 32) + 2 * _projection_params(32, 32) \
        + _projection_params(32, 64) + 2 * _projection_params(64, 64)
    assert params(meta("cifar-resnet20", shortcut="C")) == option_c
    kinds_b = [type(m.shortcut) for m in meta("cifar-resnet20", shortcut="B").modules() if isinstance(m, Block)]
    assert kinds_b.count(Projection) == 2 and kinds_b.count(nn.Identity) == 7
    kinds_a = [type(m.shortcut) for m in meta("cifar-resnet20").modules() if isinstance(m, Block)]
    assert kinds_a.count(PadShortcut) == 2


def test_option_a_pads_zeros_and_subsamples():
    shortcut = PadShortcut(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :8]) == 0 and torch.count_nonzero(y[:, 24:]) == 0


@pytest.mark.parametrize("name,variant", [("resnet18", "torchvision"), ("resnet50", "torchvision")])
def test_torchvision_state_dicts_load_and_give_identical_outputs(name, variant):
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours = build_model(name, bottleneck=variant) if name == "resnet50" else build_model(name)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_paper_bottleneck_takes_the_same_weights_but_computes_differently():
    reference = torchvision.models.resnet50(weights=None).eval()
    paper = build_model("resnet50", bottleneck="paper").eval()
    paper.load_state_dict(reference.state_dict(), strict=True)
    first = paper.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert paper(x).shape == reference(x).shape
        assert not torch.allclose(paper(x), reference(x))


def test_vgg_keys_and_shapes_match_torchvision():
    for depth in (16, 19):
        with torch.device("meta"):
            reference = getattr(torchvision.models, f"vgg{depth}")(weights=None)
        ours = meta(f"vgg{depth}")
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: v.shape for k, v in reference.state_dict().items()}


@pytest.mark.parametrize("name,options,input_shape,classes", [
    ("cifar-resnet20", {}, (2, 3, 32, 32), 10),
    ("cifar-plain32", {"shortcut": "B"}, (2, 3, 32, 32), 10),
    ("cifar-preact-resnet20", {"num_classes": 100}, (2, 3, 32, 32), 100),
    ("cifar-resnet56", {"shortcut": "C", "input_size": 64}, (1, 3, 64, 64), 10),
    ("resnet18", {"num_classes": 7}, (1, 3, 64, 64), 7),
    ("resnet34", {"shortcut": "A"}, (1, 3, 64, 64), 1000),
    ("plain50", {}, (1, 3, 64, 64), 1000),
    ("resnet101", {"bottleneck": "paper"}, (1, 3, 64, 64), 1000),
    ("resnet152", {}, (1, 3, 64, 64), 1000),
    ("vgg16", {"num_classes": 10}, (1, 3, 32, 32), 10),
    ("mlp-plain", {"depth": 30, "width": 8}, (5, 2), 2),
    ("mlp-residual", {"depth": 100, "batch_norm": True, "activation": "tanh"}, (5, 2), 2),
])
def test_forward_shapes(name, options, input_shape, classes):
    model = build_model(name, **options).eval()
    with torch.no_grad():
        out = model(torch.randn(*input_shape))
    assert out.shape == (input_shape[0], classes)
    assert torch.isfinite(out).all()


def test_1202_layers_build_and_run():
    model = build_model("cifar-resnet1202")
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 1201  # + fc = 1202 weighted layers
    # Train mode, as it trains: with BN's initial running statistics (eval mode) the 600 residual
    # sums of an untrained net grow past float range, which is what He init does, not a bug.
    with torch.no_grad():
        out = model.train()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_any_6n_plus_2_depth_builds():
    model = meta("cifar-resnet98")
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 97


@pytest.mark.parametrize("name,pattern", [
    ("cifar-resnet21", r"nearest valid: 20 or 26"),
    ("cifar-plain50", None),  # 50 = 6*8+2 is valid
    ("cifar-resnet5", r"nearest valid: 8"),
    ("resnet19", r"18, 34, 50, 101 and 152"),
    ("vgg13", r"16 and 19"),
    ("resnet", r"unknown model"),
    ("alexnet", r"Valid names"),
    ("resnt50", r"Did you mean resnet50"),
])
def test_invalid_names_fail_naming_the_valid_ones(name, pattern):
    if pattern is None:
        assert meta(name) is not None
        return
    with pytest.raises(ValueError, match=pattern):
        build_model(name)


def test_unknown_options_fail_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) width; valid options: shortcut, num_classes, input_size"):
        build_model("cifar-resnet20", width=3)
    with pytest.raises(ValueError, match=r"valid options: A, B, C"):
        build_model("resnet18", shortcut="D")
    with pytest.raises(ValueError, match=r"'torchvision', 'paper'"):
        build_model("resnet50", bottleneck="v2")
    with pytest.raises(ValueError, match=r"valid: relu, tanh"):
        build_model("mlp-plain", activation="swishy")


def test_every_listed_name_resolves_and_builds_on_meta():
    names = model_names()
    assert {"cifar-resnet1202", "cifar-preact-resnet110", "plain152", "vgg19", "mlp-residual"} <= set(names)
    for name in names:
        assert resolve(name).name == name
        if name != "cifar-resnet1202":
            assert params(meta(name)) > 0


def test_no_inplace_activations_and_models_pickle():
    for name in ("cifar-resnet20", "resnet50", "vgg16", "mlp-residual", "cifar-preact-resnet20"):
        model = build_model(name)
        assert not any(getattr(m, "inplace", False) for m in model.modules())
        clone = pickle.loads(pickle.dumps(model))
        assert params(clone) == params(model)


def _docstring_table(module) -> dict[int, int]:
    rows = re.findall(r"^\s+(\d+)\s+.*?([\d,]{6,})", module.__doc__, flags=re.M)
    return {int(depth): int(count.replace(",", "")) for depth, count in rows}


def test_module_docstring_tables_are_true():
    cifar = _docstring_table(cifar_module)
    assert set(cifar) == {20, 32, 44, 56, 110, 1202}
    for depth, count in cifar.items():
        assert params(meta(f"cifar-resnet{depth}")) == count
    imagenet = _docstring_table(imagenet_module)
    assert set(imagenet) == {18, 34, 50, 101, 152}
    for depth, count in imagenet.items():
        assert params(meta(f"resnet{depth}")) == count


@pytest.mark.parametrize("caller_training", [True, False])
def test_evaluating_gives_the_callers_mode_back_also_after_an_error(caller_training):
    model = build_model("cifar-resnet8").train(caller_training)
    with evaluating(model):
        assert not any(module.training for module in model.modules())
    assert all(module.training == caller_training for module in model.modules())
    with pytest.raises(RuntimeError, match="halfway"), in_mode(model, training=not caller_training):
        assert model.training == (not caller_training)
        raise RuntimeError("failed halfway")
    assert all(module.training == caller_training for module in model.modules())
