"""Deep fully connected nets for 2-D data, plain or residual, for the playground.

A residual layer computes ``a[l+1] = g(z[l+1] + a[l])`` with ``z[l+1] = norm(W a[l] + b)``; the
plain layer drops ``+ a[l]``. Each hidden layer has the width of its input, so the identity
shortcut needs no projection and the two nets have identical parameters: built from the same seed,
they start from identical weights.

``init`` chooses the weights' starting point: ``"pytorch"`` keeps ``nn.Linear``'s default
(uniform, variance 1/(3 fan_in)), what a student gets by writing ``nn.Linear``; ``"he"`` draws
them from N(0, 2/fan_in) with zero biases (He et al., 2015, "Delving deep into rectifiers"), which
keeps a plain ReLU stack's signal from shrinking layer by layer.
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.models.blocks import Block

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}
INITS = ("pytorch", "he")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLPBlock(Block):
    branch_entry = "linear"
    response_modules = ("norm",)

    def __init__(self, width: int, activation: str, batch_norm: bool, residual: bool):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self._set_shortcut(nn.Identity() if residual else None)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self._add_shortcut(self.norm(self.linear(x)), x))


class DeepMLP(nn.Module):
    def __init__(
        self,
        depth: int = 20,
        width: int = 16,
        activation: str = "relu",
        batch_norm: bool = False,
        residual: bool = True,
        in_features: int = 2,
        num_classes: int = 2,
        init: str = "pytorch",
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown initialisation {init!r}; valid: {', '.join(INITS)}")
        if not 1 <= depth <= 1000:
            raise ValueError(f"MLP depth must be between 1 and 1000 hidden layers, got {depth}")
        if not 1 <= width <= 4096:
            raise ValueError(f"MLP width must be between 1 and 4096, got {width}")
        self.depth, self.residual = depth, residual
        self.input_shape = (in_features,)
        self.stem = nn.Linear(in_features, width)
        self.stem_act = make_activation(activation)
        # The stem is the first hidden layer; the remaining depth-1 are blocks that may be residual.
        self.blocks = nn.Sequential(*(MLPBlock(width, activation, batch_norm, residual) for _ in range(depth - 1)))
        self.head = nn.Linear(width, num_classes)
        if init == "he":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem_act(self.stem(x))))
