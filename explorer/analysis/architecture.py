"""What a network is made of: a layer table like the paper's Table 1, and the items of its diagram."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from explorer.i18n import Translate, untranslated
from explorer.models.cost import count_parameters, meta_model
from explorer.models.blocks import Block, Bottleneck, PadShortcut, PreActBlock, Projection
from explorer.models.mlp import MLPBlock
from explorer.models.registry import resolve
from explorer.models.stages import stage_names


@dataclass(frozen=True)
class StageRow:
    """One row of the layer table."""

    stage: str  # the paper's name: conv1, conv2_x, ...
    module: str  # our module name(s): layer1, ...
    output_size: str  # e.g. "56x56" (for the model's default input)
    layers: str  # e.g. "[3x3, 64; 3x3, 64]"
    blocks: int
    channels: int
    params: int


def _conv_label(conv: nn.Conv2d) -> str:
    return f"{conv.kernel_size[0]}x{conv.kernel_size[1]}, {conv.out_channels}"


def _block_label(block: nn.Module) -> str:
    if isinstance(block, MLPBlock):
        return f"[linear, {block.linear.out_features}]"
    convs = [module for module in block.modules() if isinstance(module, nn.Conv2d)]
    branch = [conv for conv in convs if not _in_shortcut(block, conv)]
    return "[" + "; ".join(_conv_label(conv) for conv in branch) + "]"


def _in_shortcut(block: nn.Module, module: nn.Module) -> bool:
    shortcut = block.shortcut_module if isinstance(block, Block) else None
    return shortcut is not None and any(module is inner for inner in shortcut.modules())


def _output_sizes(model: nn.Module, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each named child, from one forward pass on meta."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in names:
        child = model.get_submodule(name)
        handles.append(child.register_forward_hook(
            lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape[1:]))
        ))
    try:
        with torch.no_grad():
            model(torch.empty(1, *model.input_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(dim) for dim in shape[1:]) if len(shape) == 3 else str(shape[0])


def layer_table(name: str, *, _: Translate = untranslated, **options) -> list[StageRow]:
    """The network stage by stage, as the paper's Table 1 lays it out."""
    spec = resolve(name)
    model = meta_model(name, **options)
    if spec.family == "vgg":
        return _vgg_table(model)
    if spec.family == "mlp":
        return _mlp_table(model, _)
    stages = stage_names(model)
    stem = [child for child in ("conv1", "maxpool") if hasattr(model, child)]
    shapes = _output_sizes(model, stem + stages + ["fc"])
    stem_params = sum(count_parameters(model.get_submodule(child)) for child in ("conv1", "bn1") if hasattr(model, child))
    stem_layers = _conv_label(model.conv1) + (", stride 2; 3x3 max pool, stride 2" if hasattr(model, "maxpool") else "")
    rows = [StageRow("conv1", " + ".join(stem), _size(shapes[stem[-1]]), stem_layers, 1, model.conv1.out_channels,
                     stem_params)]
    for index, stage_name in enumerate(stages, start=2):
        stage = model.get_submodule(stage_name)
        rows.append(StageRow(
            stage=f"conv{index}_x",
            module=stage_name,
            output_size=_size(shapes[stage_name]),
            layers=_block_label(stage[0]),
            blocks=len(stage),
            channels=shapes[stage_name][0],
            params=count_parameters(stage),
        ))
    head_params = count_parameters(model.fc) + sum(
        count_parameters(model.get_submodule(child)) for child in ("bn_final",) if hasattr(model, child))
    rows.append(StageRow("pool, fc", "avgpool + fc", "1x1", f"average pool, {model.fc.out_features}-d fc, softmax",
                         1, model.fc.out_features, head_params))
    return rows


def _vgg_table(model: nn.Module) -> list[StageRow]:
    rows: list[StageRow] = []
    convs: list[nn.Conv2d] = []
    params = 0
    size = model.input_shape[-1]
    for module in model.features:
        params += count_parameters(module)
        if isinstance(module, nn.Conv2d):
            convs.append(module)
        elif isinstance(module, nn.MaxPool2d):
            size //= 2
            rows.append(StageRow(
                stage=f"conv{len(rows) + 1}", module="features", output_size=f"{size}x{size}",
                layers=f"[{_conv_label(convs[0])}] x{len(convs)}, max pool", blocks=len(convs),
                channels=convs[-1].out_channels, params=params,
            ))
            convs, params = [], 0
    rows.append(StageRow("fc", "classifier", "1x1", "4096-d fc, 4096-d fc, "
                         f"{model.classifier[-1].out_features}-d fc, softmax", 3,
                         model.classifier[-1].out_features, count_parameters(model.classifier)))
    return rows


def _mlp_table(model: nn.Module, _: Translate = untranslated) -> list[StageRow]:
    width = model.stem.out_features
    rows = [StageRow(_("input layer"), "stem", str(width), f"linear {model.stem.in_features} -> {width}", 1, width,
                     count_parameters(model.stem))]
    if len(model.blocks):
        rows.append(StageRow(_("hidden"), "blocks", str(width), _block_label(model.blocks[0]), len(model.blocks), width,
                             count_parameters(model.blocks)))
    rows.append(StageRow(_("output"), "head", str(model.head.out_features), f"linear {width} -> {model.head.out_features}",
                         1, model.head.out_features, count_parameters(model.head)))
    return rows


# ---------------------------------------------------------------------------------------------
# Diagram: the weighted layers in order, with the shortcut arcs over the blocks.


@dataclass
class DiagramLayer:
    label: str  # e.g. "3x3 conv, 64, /2"
    stage: int  # 0 for the stem, 1.. for the stages, then the head
    kind: str = "conv"  # "conv", "linear", "fc", "pool" or "gap" (blocks left out)
    hidden_blocks: int = 0  # for kind "gap": how many blocks it stands for


@dataclass
class DiagramArc:
    start: int  # index of the layer whose output enters the block
    end: int  # index of the block's last layer, where the shortcut is added
    kind: str  # "identity", "pad" (option A) or "projection" (options B and C)


@dataclass
class Diagram:
    layers: list[DiagramLayer] = field(default_factory=list)
    arcs: list[DiagramArc] = field(default_factory=list)
    residual: bool = True


def _shortcut_kind(shortcut: nn.Module) -> str:
    if isinstance(shortcut, Projection):
        return "projection"
    if isinstance(shortcut, PadShortcut):
        return "pad"
    return "identity"


def _block_layers(block: nn.Module, stage: int) -> list[DiagramLayer]:
    if isinstance(block, MLPBlock):
        return [DiagramLayer(f"linear, {block.linear.out_features}", stage, "linear")]
    layers = []
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and not _in_shortcut(block, module):
            stride = module.stride[0]
            layers.append(DiagramLayer(f"{_conv_label(module).replace(',', ' conv,')}" + (", /2" if stride == 2 else ""),
                                       stage))
    return layers


def network_diagram(name: str, max_blocks_per_stage: int = 6, *, _: Translate = untranslated, **options) -> Diagram:
    """The layers and shortcut arcs to draw; stages with many blocks show their first and last ones."""
    spec = resolve(name)
    model = meta_model(name, **options)
    diagram = Diagram(residual=bool(getattr(model, "residual", False)))
    if spec.family == "vgg":
        for module in model.features:
            if isinstance(module, nn.Conv2d):
                diagram.layers.append(DiagramLayer(_conv_label(module).replace(",", " conv,"), 0))
            elif isinstance(module, nn.MaxPool2d) and diagram.layers:
                diagram.layers[-1].label += ", pool /2"
        diagram.layers += [DiagramLayer("fc 4096", 1, "fc"), DiagramLayer("fc 4096", 1, "fc"),
                           DiagramLayer(f"fc {model.classifier[-1].out_features}", 1, "fc")]
        return diagram
    if spec.family == "mlp":
        diagram.layers.append(DiagramLayer(f"linear, {model.stem.out_features}", 0, "linear"))
        stages = [("blocks", model.blocks)]
    else:
        stem_label = _conv_label(model.conv1).replace(",", " conv,") + (", /2, pool /2" if hasattr(model, "maxpool") else "")
        diagram.layers.append(DiagramLayer(stem_label, 0))
        stages = [(stage_name, model.get_submodule(stage_name)) for stage_name in stage_names(model)]
    for stage_index, (_stage_name, stage) in enumerate(stages, start=1):
        blocks = list(stage)
        shown = list(range(len(blocks)))
        if len(blocks) > max_blocks_per_stage:
            head = max_blocks_per_stage // 2
            tail = max_blocks_per_stage - head - 1
            shown = list(range(head)) + [-1] + list(range(len(blocks) - tail, len(blocks)))
        for block_index in shown:
            if block_index == -1:
                diagram.layers.append(DiagramLayer(_("... {count} more blocks ...").format(
                                                       count=len(blocks) - max_blocks_per_stage + 1),
                                                   stage_index, "gap", len(blocks) - max_blocks_per_stage + 1))
                continue
            block = blocks[block_index]
            entry = len(diagram.layers) - 1
            diagram.layers += _block_layers(block, stage_index)
            if isinstance(block, Block) and block.is_residual:
                diagram.arcs.append(DiagramArc(entry, len(diagram.layers) - 1, _shortcut_kind(block.shortcut_module)))
    head = model.head if spec.family == "mlp" else model.fc
    diagram.layers.append(DiagramLayer(f"fc {head.out_features}" if spec.family != "mlp" else f"linear, {head.out_features}",
                                       len(stages) + 1, "fc"))
    return diagram


def describe_blocks(name: str, *, _: Translate = untranslated, **options) -> str:
    """A one-line summary, e.g. "27 basic blocks, identity shortcuts (option A)"."""
    model = meta_model(name, **options)
    blocks = [module for module in model.modules() if isinstance(module, Block)]
    if not blocks:
        return _("no residual blocks (a plain stack of layers)")
    kind = (_("bottleneck") if isinstance(blocks[0], Bottleneck) else
            _("pre-activation") if isinstance(blocks[0], PreActBlock) else
            _("fully connected") if isinstance(blocks[0], MLPBlock) else _("basic"))
    residual = [block for block in blocks if block.is_residual]
    if not residual:
        return _("{count} {kind} blocks without shortcuts (plain)").format(count=len(blocks), kind=kind)
    option = getattr(model, "shortcut_option", None)
    if option:
        return _("{count} {kind} blocks with shortcuts (option {option})").format(count=len(blocks), kind=kind,
                                                                                  option=option)
    return _("{count} {kind} blocks with shortcuts").format(count=len(blocks), kind=kind)
