"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2014), the paper's complexity baseline (Fig. 3, Table 1).

Module names and shapes are torchvision's (``features.N``, ``classifier.0/3/6``), so its weights
load. Parameters with 1000 classes: VGG-16 138,357,544; VGG-19 143,667,240. VGG-19 costs
19.6 billion multiply-adds at 224x224, against 3.6 for the 34-layer plain and residual nets.
"""

from __future__ import annotations

import torch
from torch import nn

# Output channels of each 3x3 convolution; "M" is a 2x2 max pooling.
VGG_CONFIGS: dict[int, list[int | str]] = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, depth: int = 16, batch_norm: bool = False, num_classes: int = 1000, input_size: int = 224):
        super().__init__()
        if depth not in VGG_CONFIGS:
            raise ValueError(f"VGG depth {depth} is not available; valid: 16, 19")
        self.depth, self.residual = depth, False
        self.input_shape = (3, input_size, input_size)
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG_CONFIGS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(in_channels, item, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            in_channels = item
        self.features = nn.Sequential(*layers)
        # Fixed 7x7 pooling keeps the classifier's shapes (and torchvision's weights) at any input size.
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
