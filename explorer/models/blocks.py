"""Building blocks shared by every convolutional family.

A block is residual when it has a ``shortcut`` module and plain when ``shortcut`` is None; every
other line is shared, so a plain net and its residual twin differ only in the shortcuts
(He et al., 2015, section 4.1). Every part a probe or Grad-CAM may hook is its own named
submodule, activations are never in-place and the addition is ``out = out + identity``, so hooks
see each tensor once and models pickle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels; adds no parameter."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Pad half the new channels on each side, as the reference CIFAR implementations do.
        before = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, before, self.extra_channels - before))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class Projection(nn.Sequential):
    """Options B and C: a strided 1x1 convolution and BN (keys ``0`` and ``1``, as torchvision's)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of a residual block (section 3.3).

    A: identity, zero-padding when the dimensions grow. B: projection only when they grow.
    C: projection everywhere.
    """
    option = check_shortcut_option(option)
    changes_shape = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and changes_shape):
        return Projection(in_channels, out_channels, stride)
    if changes_shape:
        return PadShortcut(in_channels, out_channels, stride)
    return nn.Identity()


def check_shortcut_option(option: str) -> str:
    normalised = str(option).upper()
    if normalised not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; valid options: A, B, C")
    return normalised


class Block(nn.Module):
    """What every block shares: where its shortcut lives and how it is added.

    ``shortcut_name`` is the attribute (and state_dict key) of the shortcut module: ``shortcut``
    in the CIFAR family, ``downsample`` in the ImageNet family so that torchvision's weights load.
    """

    shortcut_name = "shortcut"
    expansion = 1
    # For the probes: the first layer of the residual branch (its input is the block's input), and
    # the layers whose outputs are the paper's Fig. 7 "responses" (a 3x3 conv after its BN, before
    # ReLU or the addition).
    branch_entry = "conv1"
    response_modules: tuple[str, ...] = ("bn1", "bn2")

    def _set_shortcut(self, shortcut: nn.Module | None) -> None:
        setattr(self, self.shortcut_name, shortcut)

    @property
    def shortcut_module(self) -> nn.Module | None:
        return getattr(self, self.shortcut_name)

    @property
    def is_residual(self) -> bool:
        return self.shortcut_module is not None

    def _add_shortcut(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut_module
        if shortcut is None:
            return out
        return out + shortcut(x)


class BasicBlock(Block):
    """Two 3x3 convolutions (Fig. 2): ``act2(bn2(conv2(act1(bn1(conv1(x))))) + shortcut(x))``."""

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self._set_shortcut(shortcut)
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self._add_shortcut(out, x)
        return self.act2(out)


class Bottleneck(Block):
    """1x1 reduce, 3x3, 1x1 expand (Fig. 5 right), for ResNet-50/101/152.

    ``stride_on`` places the downsampling stride: ``"1x1"`` on the first 1x1 convolution, as the
    paper does, or ``"3x3"`` on the 3x3 convolution, as torchvision does ("ResNet v1.5"). The
    weights have the same shapes either way, but with the stride on the 3x3 the first 1x1 convolution of
    each downsampling block runs at the input's resolution, 4 times the positions: ResNet-50 costs
    about 4.1 instead of 3.9 GMACs (Table 1 says 3.8).
    """

    expansion = 4
    response_modules = ("bn2",)  # the bottleneck's only 3x3

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int,
        shortcut: nn.Module | None,
        stride_on: str = "3x3",
    ):
        super().__init__()
        if stride_on not in ("1x1", "3x3"):
            raise ValueError(f"unknown stride placement {stride_on!r}; valid: '1x1' (paper), '3x3' (torchvision)")
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, channels, stride if stride_on == "1x1" else 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU()
        self.conv2 = conv3x3(channels, channels, stride if stride_on == "3x3" else 1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = nn.ReLU()
        self.conv3 = conv1x1(channels, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self._set_shortcut(shortcut)
        self.act3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self._add_shortcut(out, x)
        return self.act3(out)


class PreActBlock(Block):
    """Pre-activation basic block (He et al., 2016, "Identity Mappings in Deep Residual Networks").

    ``conv2(act2(bn2(conv1(act1(bn1(x)))))) + shortcut(x)``: BN and ReLU come before each
    convolution and nothing follows the addition, so the shortcut path is a pure identity.
    """

    branch_entry = "bn1"
    response_modules = ("conv1", "conv2")  # no BN follows a conv here: its output is the response

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self._set_shortcut(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act1(self.bn1(x)))
        out = self.conv2(self.act2(self.bn2(out)))
        return self._add_shortcut(out, x)


def init_he(model: nn.Module) -> None:
    """He (Kaiming) normal initialisation for convolutions, as the paper (section 3.4) uses."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
