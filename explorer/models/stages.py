"""The one stage builder every ResNet-style family uses: depth is data."""

from __future__ import annotations

from torch import nn

from explorer.models.blocks import Block, make_shortcut


def make_stage(
    block: type[Block],
    in_channels: int,
    channels: int,
    num_blocks: int,
    stride: int,
    residual: bool,
    shortcut_option: str,
    **block_options,
) -> tuple[nn.Sequential, int]:
    """``num_blocks`` blocks, the first one strided; returns the stage and its output channels.

    A plain stage is the residual one with every shortcut set to None, and nothing else changed.
    """
    out_channels = channels * block.expansion
    blocks = []
    for index in range(num_blocks):
        block_in = in_channels if index == 0 else out_channels
        block_stride = stride if index == 0 else 1
        shortcut = make_shortcut(shortcut_option, block_in, out_channels, block_stride) if residual else None
        blocks.append(block(block_in, channels, block_stride, shortcut, **block_options))
    return nn.Sequential(*blocks), out_channels


def stage_names(model: nn.Module) -> list[str]:
    """Names of the model's stages (``layer1``, ``layer2``, ...) in order."""
    return [name for name, _ in model.named_children() if name.startswith("layer")]
