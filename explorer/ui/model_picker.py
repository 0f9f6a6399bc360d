"""Widgets that choose a model: family, depth, plain or residual, shortcut option."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from explorer.models.imagenet import IMAGENET_DEPTHS
from explorer.models.mlp import ACTIVATIONS
from explorer.models.registry import PAPER_CIFAR_DEPTHS

FAMILIES = {
    "cifar": "CIFAR-10 family (6n+2 layers)",
    "imagenet": "ImageNet family (18-152)",
    "vgg": "VGG (the paper's baseline)",
    "mlp": "Deep MLP (2-D data)",
}
SHORTCUT_HELP = (
    "A: identity, zero-padding the extra channels when the width doubles (no parameters). "
    "B: projection (1x1 conv) only where the dimensions change. C: projection on every block."
)


@dataclass
class ModelChoice:
    name: str
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        extras = ", ".join(f"{key}={value}" for key, value in self.options.items())
        return f"{self.name} ({extras})" if extras else self.name


def pick_model(key: str = "arch") -> ModelChoice:
    """Family, depth and variant widgets; returns the registry name and options they describe."""
    family = st.radio("Family", list(FAMILIES), format_func=FAMILIES.get, horizontal=True, key=f"{key}_family")
    columns = st.columns(3)
    if family == "cifar":
        depth = columns[0].number_input(
            "Depth (6n+2)", min_value=1, max_value=2000, value=20, step=6, key=f"{key}_cifar_depth",
            help=f"The paper trains {', '.join(map(str, PAPER_CIFAR_DEPTHS))}. Any 6n+2 works.",
        )
        variant = columns[1].radio("Network", ["residual", "plain", "pre-activation residual"], key=f"{key}_cifar_variant")
        prefix = {"residual": "cifar-resnet", "plain": "cifar-plain", "pre-activation residual": "cifar-preact-resnet"}
        options = {}
        if variant != "plain":
            options["shortcut"] = columns[2].radio("Shortcut option", ["A", "B", "C"], key=f"{key}_cifar_shortcut",
                                                   help=SHORTCUT_HELP)
        return ModelChoice(f"{prefix[variant]}{int(depth)}", options)
    if family == "imagenet":
        depth = columns[0].selectbox("Depth", list(IMAGENET_DEPTHS), index=1, key=f"{key}_in_depth")
        variant = columns[1].radio("Network", ["residual", "plain"], key=f"{key}_in_variant")
        options = {}
        if variant == "residual":
            options["shortcut"] = columns[2].radio("Shortcut option", ["A", "B", "C"], index=1,
                                                   key=f"{key}_in_shortcut", help=SHORTCUT_HELP)
        if IMAGENET_DEPTHS[depth][0] == "bottleneck":
            options["bottleneck"] = columns[2].radio(
                "Bottleneck stride", ["torchvision", "paper"], key=f"{key}_in_bottleneck",
                help="paper: stride 2 on the first 1x1 convolution; torchvision: on the 3x3 (same weights, "
                     "more multiply-adds, what torchvision's pretrained weights were trained with).",
            )
        return ModelChoice(f"{'resnet' if variant == 'residual' else 'plain'}{depth}", options)
    if family == "vgg":
        depth = columns[0].radio("Depth", [16, 19], index=1, key=f"{key}_vgg_depth")
        return ModelChoice(f"vgg{depth}")
    depth = columns[0].slider("Hidden layers", 1, 200, 20, key=f"{key}_mlp_depth")
    width = columns[0].slider("Width", 2, 256, 16, key=f"{key}_mlp_width")
    variant = columns[1].radio("Network", ["residual", "plain"], key=f"{key}_mlp_variant")
    activation = columns[2].selectbox("Activation", list(ACTIVATIONS), key=f"{key}_mlp_activation")
    batch_norm = columns[2].checkbox("BatchNorm", key=f"{key}_mlp_bn")
    return ModelChoice(f"mlp-{variant}", {"depth": depth, "width": width, "activation": activation,
                                          "batch_norm": batch_norm})
