"""The ImageNet family of "Deep Residual Learning for Image Recognition" (He et al., 2015, Table 1).

A 7x7/2 convolution and 3x3/2 max pooling, four stages at 56, 28, 14 and 7 pixels (for a 224x224
input) with 64, 128, 256 and 512 base channels, global average pooling, a 1000-way layer. Basic
blocks for 18 and 34 layers, bottleneck blocks (x4 expansion) for 50, 101 and 152. Shortcut
option B (projection only where the dimensions change) is the default, as for the paper's deeper
nets. Module and parameter names are torchvision's (``downsample``, ``layer1.0.conv1``...), so
torchvision's ImageNet state_dicts load unchanged.

Parameters with 1000 classes (equal to torchvision's):

    depth   block        blocks per stage   params       paper MACs (Table 1)
    18      basic        2, 2, 2, 2         11,689,512   1.8 G
    34      basic        3, 4, 6, 3         21,797,672   3.6 G
    50      bottleneck   3, 4, 6, 3         25,557,032   3.8 G
    101     bottleneck   3, 4, 23, 3        44,549,160   7.6 G
    152     bottleneck   3, 8, 36, 3        60,192,808   11.3 G

Bottleneck placement: ``bottleneck="torchvision"`` (the default, so pretrained weights compute
what they were trained for) puts the stride on the 3x3 convolution; ``bottleneck="paper"`` puts it
on the first 1x1 convolution, as the paper does, which computes fewer multiply-adds with the same
weights (ResNet-50: about 3.9 instead of 4.1 GMACs).
"""

from __future__ import annotations

import torch
from torch import nn

from explorer.models.blocks import BasicBlock, Bottleneck, check_shortcut_option, init_he
from explorer.models.stages import make_stage

# depth: (block kind, blocks per stage)
IMAGENET_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_CHANNELS = (64, 128, 256, 512)
BOTTLENECK_VARIANTS = {"torchvision": "3x3", "paper": "1x1"}


class ImageNetBasicBlock(BasicBlock):
    shortcut_name = "downsample"  # torchvision's key


class ImageNetBottleneck(Bottleneck):
    shortcut_name = "downsample"


class ImageNetResNet(nn.Module):
    def __init__(
        self,
        depth: int = 18,
        residual: bool = True,
        shortcut: str = "B",
        bottleneck: str = "torchvision",
        num_classes: int = 1000,
        input_size: int = 224,
    ):
        super().__init__()
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"ImageNet depth {depth} is not one of the paper's: 18, 34, 50, 101, 152")
        if bottleneck not in BOTTLENECK_VARIANTS:
            raise ValueError(f"unknown bottleneck variant {bottleneck!r}; valid: 'torchvision', 'paper'")
        shortcut = check_shortcut_option(shortcut)
        kind, counts = IMAGENET_DEPTHS[depth]
        self.depth, self.residual, self.shortcut_option, self.bottleneck = depth, residual, shortcut, bottleneck
        self.input_shape = (3, input_size, input_size)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        if kind == "basic":
            block, block_options = ImageNetBasicBlock, {}
        else:
            block, block_options = ImageNetBottleneck, {"stride_on": BOTTLENECK_VARIANTS[bottleneck]}
        in_channels = 64
        for index, (channels, count) in enumerate(zip(STAGE_CHANNELS, counts), start=1):
            stride = 1 if index == 1 else 2
            stage, in_channels = make_stage(
                block, in_channels, channels, count, stride, residual, shortcut, **block_options
            )
            self.add_module(f"layer{index}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
