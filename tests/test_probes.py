"""The probes against autograd and direct computation."""

import pytest
import torch
import torch.nn.functional as F

from explorer.models import build_model
from explorer.models.blocks import Block
from explorer.train.probes import GradientProbe, ResponseProbe, measure_responses, response_layers, weight_grad_norms


def _block_inputs_with_autograd(model, x, y):
    """The gradient of the loss at each block's input, by autograd (retain_grad on the inputs)."""
    inputs = []

    def keep(module, args):
        args[0].retain_grad()
        inputs.append(args[0])

    handles = [m.register_forward_pre_hook(keep) for m in model.modules() if isinstance(m, Block)]
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for handle in handles:
            handle.remove()
    return [tensor.grad.clone() for tensor in inputs]


@pytest.mark.parametrize("name,options", [
    ("cifar-resnet8", {"shortcut": "A"}),
    ("cifar-resnet8", {"shortcut": "B"}),
    ("cifar-preact-resnet8", {}),
    ("cifar-plain8", {}),
    ("mlp-residual", {"depth": 6, "width": 8, "batch_norm": True}),
])
def test_gradient_parts_sum_to_the_autograd_gradient(name, options):
    torch.manual_seed(0)
    model = build_model(name, **options)
    shape = (6, 2) if name.startswith("mlp") else (6, 3, 16, 16)
    x, y = torch.randn(*shape), torch.randint(0, 2, (6,))
    expected = _block_inputs_with_autograd(model, x, y)
    model.zero_grad()
    with GradientProbe(model, keep_vectors=True) as probe:
        F.cross_entropy(model(x), y).backward()
    records = probe.read()
    assert len(records) == len(expected) > 0
    for index, (record, truth) in enumerate(zip(records, expected)):
        total = probe.vectors["total"][index]
        residual = probe.vectors["residual"][index]
        torch.testing.assert_close(total, truth)
        shortcut = probe.vectors["shortcut"].get(index, torch.zeros_like(total))
        torch.testing.assert_close(shortcut + residual, truth, rtol=1e-5, atol=1e-7)
        assert record["total"] == pytest.approx(truth.norm().item(), rel=1e-5)
        if name.startswith("cifar-plain"):
            assert record["shortcut"] == 0 and record["residual"] == pytest.approx(record["total"], rel=1e-6)
        else:
            assert record["shortcut"] > 0
    # Nothing is left behind.
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_response_probe_matches_a_direct_computation_and_restores_the_mode():
    model = build_model("cifar-resnet8").train()
    x = torch.randn(8, 3, 32, 32)
    layers = response_layers(model)
    assert [name for name, _ in layers] == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1", "layer2.0.bn2",
                                            "layer3.0.bn1", "layer3.0.bn2"]
    outputs = {}
    handles = [module.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
               for name, module in layers]
    model.eval()
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    model.train()
    records = measure_responses(model, x)
    assert model.training
    for record in records:
        assert record["std"] == pytest.approx(outputs[record["name"]].std().item(), rel=1e-5)
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_are_removed_on_error():
    model = build_model("cifar-resnet8")
    with pytest.raises(RuntimeError):
        with ResponseProbe(model), GradientProbe(model):
            model(torch.randn(2, 3, 32, 32))
            raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_preact_and_bottleneck_response_layers():
    assert [n for n, _ in response_layers(build_model("cifar-preact-resnet8"))][:3] == \
        ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    with torch.device("meta"):
        names = [n for n, _ in response_layers(build_model("resnet50"))]
    assert len(names) == 16 and names[0] == "layer1.0.bn2"  # one 3x3 per bottleneck; the stem is 7x7


def test_weight_grad_norms():
    model = build_model("cifar-resnet8")
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.randint(0, 10, (4,))).backward()
    records = {r["name"]: r["weight_grad"] for r in weight_grad_norms(model)}
    assert records["conv1"] == pytest.approx(model.conv1.weight.grad.norm().item(), rel=1e-5)
    assert records["fc"] == pytest.approx(model.fc.weight.grad.norm().item(), rel=1e-5)
    assert len(records) == 7 + 1  # seven 3x3 convs and the fc
