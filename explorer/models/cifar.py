"""The CIFAR-10 family of "Deep Residual Learning for Image Recognition" (He et al., 2015, sec. 4.2).

A 3x3 convolution with 16 filters, then three stages of n blocks on 32x32, 16x16 and 8x8 maps
with 16, 32 and 64 filters, global average pooling and a fully connected layer: 6n+2 weighted
layers. Shortcut option A (identity, zero-padded when the width doubles) is the default, as in the
paper, so the residual nets have exactly as many parameters as their plain twins.

Parameters with 10 classes and option A (the paper's Table 6 rounds these):

    depth   n     params       paper
    20      3     269,722      0.27M
    32      5     464,154      0.46M
    44      7     658,586      0.66M
    56      9     853,018      0.85M
    110     18    1,727,962    1.7M
    1202    200   19,421,274   19.4M

``cifar-preact-resnet{D}`` uses the pre-activation block of He et al., 2016 ("Identity Mappings
in Deep Residual Networks"): BN and ReLU before each convolution, one BN and ReLU before pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.models.blocks import BasicBlock, PreActBlock, check_shortcut_option, init_he
from explorer.models.stages import make_stage

STAGE_CHANNELS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)


def blocks_per_stage(depth: int) -> int:
    """n for a 6n+2-layer net; a depth that is not 6n+2 fails naming the nearest valid ones."""
    if depth < 8 or (depth - 2) % 6:
        lower = max(8, (depth - 2) // 6 * 6 + 2)
        upper = lower + 6 if lower <= depth else lower
        nearest = f"{lower} or {upper}" if lower != upper else f"{lower}"
        raise ValueError(
            f"depth {depth} is not of the form 6n+2 with n >= 1 (8, 14, 20, 26, 32, ...); nearest valid: {nearest}"
        )
    return (depth - 2) // 6


class CifarResNet(nn.Module):
    """6n+2 layers; ``residual=False`` gives the plain twin, ``preact=True`` the 2016 variant."""

    def __init__(
        self,
        depth: int = 20,
        residual: bool = True,
        preact: bool = False,
        shortcut: str = "A",
        num_classes: int = 10,
        input_size: int = 32,
    ):
        super().__init__()
        n = blocks_per_stage(depth)
        shortcut = check_shortcut_option(shortcut)
        self.depth, self.residual, self.preact, self.shortcut_option = depth, residual, preact, shortcut
        self.input_shape = (3, input_size, input_size)
        self.conv1 = nn.Conv2d(3, STAGE_CHANNELS[0], 3, padding=1, bias=False)
        if not preact:  # pre-activation blocks normalise their own input
            self.bn1 = nn.BatchNorm2d(STAGE_CHANNELS[0])
            self.act1 = nn.ReLU()
        block = PreActBlock if preact else BasicBlock
        in_channels = STAGE_CHANNELS[0]
        for index, (channels, stride) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES), start=1):
            stage, in_channels = make_stage(block, in_channels, channels, n, stride, residual, shortcut)
            self.add_module(f"layer{index}", stage)
        if preact:
            self.bn_final = nn.BatchNorm2d(in_channels)
            self.act_final = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if not self.preact:
            x = self.act1(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.preact:
            x = self.act_final(self.bn_final(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))
