"""The paper's probes, recorded during training.

- Layer responses (Fig. 7): the standard deviation of each 3x3 layer's output after its BN and
  before ReLU or the addition, on a fixed held-out batch, in network order.
- Gradient flow: for every block, the norm of the loss gradient at the block's input, and its two
  parts, what arrives through the shortcut and what arrives through the residual branch (a plain
  block has only the branch). Each part is caught by a tensor hook on its own alias of the input,
  registered in the forward pass, so the parts sum, as vectors, to the total.
- Weight gradients: the norm of each conv and linear weight's gradient.

Hooks live in context managers that remove them on exit, also on error. Each hook reduces to one
float, kept on the device and read once, so probing costs no synchronisation per layer.
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.models.blocks import Block
from explorer.models.mode import evaluating


def response_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer whose output is a Fig. 7 response, in network order."""
    layers: list[tuple[str, nn.Module]] = []
    conv1 = getattr(model, "conv1", None)
    if isinstance(conv1, nn.Conv2d) and conv1.kernel_size == (3, 3):  # the CIFAR stem
        layers.append(("bn1", model.bn1) if hasattr(model, "bn1") else ("conv1", conv1))
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):  # VGG: each 3x3 conv, or its BN when it has one
        modules = list(features.named_children())
        for index, (name, module) in enumerate(modules):
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                following = modules[index + 1] if index + 1 < len(modules) else None
                chosen = following if following and isinstance(following[1], nn.BatchNorm2d) else (name, module)
                layers.append((f"features.{chosen[0]}", chosen[1]))
    for name, module in model.named_modules():
        if isinstance(module, Block):
            layers += [(f"{name}.{child}", getattr(module, child)) for child in module.response_modules]
    return layers


def named_blocks(model: nn.Module) -> list[tuple[str, Block]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Block)]


class _Hooks:
    """Keeps hook handles and removes them all on exit, also when the body raised."""

    def __init__(self):
        self._handles: list = []

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class ResponseProbe(_Hooks):
    """Records the std of every response layer's output during the forward passes inside it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.layers = response_layers(model)
        self._values: torch.Tensor | None = None

    def __enter__(self) -> "ResponseProbe":
        for index, (_, module) in enumerate(self.layers):
            self._handles.append(module.register_forward_hook(self._recorder(index)))
        return self

    def _recorder(self, index: int):
        def record(module, inputs, output):
            if self._values is None:
                self._values = torch.zeros(len(self.layers), device=output.device)
            self._values[index] = output.detach().float().std()
        return record

    def read(self) -> list[dict]:
        values = self._values.tolist() if self._values is not None else [float("nan")] * len(self.layers)
        return [{"name": name, "std": value} for (name, _), value in zip(self.layers, values)]


def measure_responses(model: nn.Module, images: torch.Tensor) -> list[dict]:
    """Fig. 7 on ``images``: eval mode and no gradients, the caller's mode restored."""
    with evaluating(model), torch.no_grad(), ResponseProbe(model) as probe:
        model(images)
    return probe.read()


class GradientProbe(_Hooks):
    """Catches, for one backward pass, the gradient at each block's input and its two parts.

    Use around the forward *and* backward pass of a training step. With ``keep_vectors`` the
    gradients themselves are kept too (for tests), under ``vectors[kind][block index]``.
    """

    KINDS = ("total", "shortcut", "residual")

    def __init__(self, model: nn.Module, keep_vectors: bool = False):
        super().__init__()
        self.blocks = named_blocks(model)
        self.keep_vectors = keep_vectors
        self.vectors: dict[str, dict[int, torch.Tensor]] = {kind: {} for kind in self.KINDS}
        self._norms: torch.Tensor | None = None

    def __enter__(self) -> "GradientProbe":
        for index, (_, block) in enumerate(self.blocks):
            self._handles.append(block.register_forward_pre_hook(self._aliaser(index, "total")))
            self._handles.append(getattr(block, block.branch_entry).register_forward_pre_hook(
                self._aliaser(index, "residual")))
            if block.shortcut_module is not None:
                self._handles.append(block.shortcut_module.register_forward_pre_hook(self._aliaser(index, "shortcut")))
        return self

    def _aliaser(self, index: int, kind: str):
        # A fresh view of the input is a new node in the graph: the gradient that reaches it is
        # exactly what flows back through this path.
        def alias(module, inputs):
            x = inputs[0]
            if not x.requires_grad:
                return None
            view = x.view_as(x)
            view.register_hook(self._recorder(index, kind))
            return (view, *inputs[1:])
        return alias

    def _recorder(self, index: int, kind: str):
        row = self.KINDS.index(kind)

        def record(grad: torch.Tensor) -> None:
            if self._norms is None:
                self._norms = torch.zeros(len(self.KINDS), len(self.blocks), device=grad.device)
            self._norms[row, index] = grad.detach().float().norm()
            if self.keep_vectors:
                self.vectors[kind][index] = grad.detach().clone()
        return record

    def read(self) -> list[dict]:
        """Per block: {"name", "total", "shortcut", "residual"} (shortcut 0 for plain blocks)."""
        if self._norms is None:
            return []
        total, shortcut, residual = self._norms.tolist()
        return [{"name": name, "total": total[i], "shortcut": shortcut[i], "residual": residual[i]}
                for i, (name, _) in enumerate(self.blocks)]


def weight_grad_norms(model: nn.Module) -> list[dict]:
    """The gradient norm of every conv and linear weight, read with one synchronisation."""
    named = [(name, parameter.grad) for name, parameter in model.named_parameters()
             if parameter.grad is not None and parameter.ndim >= 2]
    if not named:
        return []
    norms = torch.stack(torch._foreach_norm([grad for _, grad in named])).float().tolist()
    return [{"name": name.removesuffix(".weight"), "weight_grad": norm} for (name, _), norm in zip(named, norms)]
