"""Widgets that choose a model: family, depth, plain or residual, shortcut option."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from explorer.i18n import N_
from explorer.models.imagenet import IMAGENET_DEPTHS
from explorer.models.mlp import ACTIVATIONS
from explorer.models.registry import PAPER_CIFAR_DEPTHS
from explorer.ui.i18n import _, translate

FAMILIES = {
    "cifar": N_("CIFAR-10 family (6n+2 layers)"),
    "imagenet": N_("ImageNet family (18-152)"),
    "vgg": N_("VGG (the paper's baseline)"),
    "mlp": N_("Deep MLP (2-D data)"),
}
VARIANTS = {  # the Network radio's options
    "residual": N_("residual"),
    "plain": N_("plain"),
    "pre-activation residual": N_("pre-activation residual"),
}
SHORTCUT_HELP = N_(
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
    # Option labels in this run's language, looked up now: a format_func may be called outside the
    # script run (AppTest's set_value), where the session's language cannot be read.
    family_names = {name: translate(text) for name, text in FAMILIES.items()}
    variant_names = {variant: translate(text) for variant, text in VARIANTS.items()}
    family = st.radio(_("Family"), list(FAMILIES), format_func=family_names.get, horizontal=True, key=f"{key}_family")
    columns = st.columns(3)
    if family == "cifar":
        depth = columns[0].number_input(
            _("Depth (6n+2)"), min_value=1, max_value=2000, value=20, step=6, key=f"{key}_cifar_depth",
            help=_("The paper trains {depths}. Any 6n+2 works.").format(depths=", ".join(map(str, PAPER_CIFAR_DEPTHS))),
        )
        variant = columns[1].radio(_("Network"), ["residual", "plain", "pre-activation residual"],
                                   format_func=variant_names.get, key=f"{key}_cifar_variant")
        prefix = {"residual": "cifar-resnet", "plain": "cifar-plain", "pre-activation residual": "cifar-preact-resnet"}
        options = {}
        if variant != "plain":
            options["shortcut"] = columns[2].radio(_("Shortcut option"), ["A", "B", "C"], key=f"{key}_cifar_shortcut",
                                                   help=translate(SHORTCUT_HELP))
        return ModelChoice(f"{prefix[variant]}{int(depth)}", options)
    if family == "imagenet":
        depth = columns[0].selectbox(_("Depth"), list(IMAGENET_DEPTHS), index=1, key=f"{key}_in_depth")
        variant = columns[1].radio(_("Network"), ["residual", "plain"], format_func=variant_names.get,
                                   key=f"{key}_in_variant")
        options = {}
        if variant == "residual":
            options["shortcut"] = columns[2].radio(_("Shortcut option"), ["A", "B", "C"], index=1,
                                                   key=f"{key}_in_shortcut", help=translate(SHORTCUT_HELP))
        if IMAGENET_DEPTHS[depth][0] == "bottleneck":
            stride_names = {"torchvision": "torchvision", "paper": _("paper")}
            options["bottleneck"] = columns[2].radio(
                _("Bottleneck stride"), ["torchvision", "paper"], key=f"{key}_in_bottleneck",
                format_func=stride_names.get,
                help=_("paper: stride 2 on the first 1x1 convolution; torchvision: on the 3x3 (same weights, "
                       "more multiply-adds, what torchvision's pretrained weights were trained with)."),
            )
        return ModelChoice(f"{'resnet' if variant == 'residual' else 'plain'}{depth}", options)
    if family == "vgg":
        depth = columns[0].radio(_("Depth"), [16, 19], index=1, key=f"{key}_vgg_depth")
        return ModelChoice(f"vgg{depth}")
    depth = columns[0].slider(_("Hidden layers"), 1, 200, 20, key=f"{key}_mlp_depth")
    width = columns[0].slider(_("Width"), 2, 256, 16, key=f"{key}_mlp_width")
    variant = columns[1].radio(_("Network"), ["residual", "plain"], format_func=variant_names.get,
                               key=f"{key}_mlp_variant")
    activation = columns[2].selectbox(_("Activation"), list(ACTIVATIONS), key=f"{key}_mlp_activation")
    batch_norm = columns[2].checkbox("BatchNorm", key=f"{key}_mlp_bn")
    return ModelChoice(f"mlp-{variant}", {"depth": depth, "width": width, "activation": activation,
                                          "batch_norm": batch_norm})
