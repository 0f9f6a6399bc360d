"""What the Concepts page draws and counts: residual blocks as Graphviz diagrams, and their weights
counted from the blocks the models are built of (explorer/models/blocks.py), not typed in.

He et al., 2015: Fig. 2 (the residual block), section 3.3 (shortcut options A, B, C), Fig. 5 (basic
and bottleneck blocks, "similar time complexity").
"""

from __future__ import annotations

from torch import nn

from explorer.i18n import Translate, untranslated
from explorer.models.blocks import BasicBlock, Bottleneck, make_shortcut

_STYLE = ('rankdir=TB; bgcolor="transparent"; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
          'fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=10];')
_ACT = 'fillcolor="#fdf0e6"'
_ADD = 'shape=circle, fillcolor="#e8f5e9", label="+"'


def _weights(module: nn.Module) -> int:
    """Weights of the convolutions and linear maps (BatchNorm's scale and shift not counted, as in Fig. 5)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def fig5_weights() -> dict[str, int]:
    """Fig. 5: a basic block on 64 channels against a bottleneck on 256 (64 inside)."""
    return {
        "basic": _weights(BasicBlock(64, 64, 1, nn.Identity())),
        "bottleneck": _weights(Bottleneck(256, 64, 1, nn.Identity())),
    }


def shortcut_weights(in_channels: int = 64, out_channels: int = 128) -> dict[str, dict[str, int]]:
    """Weights each option's shortcut adds on a block where the channels grow (stride 2) and on one
    that keeps its size (BatchNorm not counted)."""
    return {option: {"grows": _weights(make_shortcut(option, in_channels, out_channels, 2)),
                     "same": _weights(make_shortcut(option, out_channels, out_channels, 1))}
            for option in ("A", "B", "C")}


def plain_block_dot(_: Translate = untranslated) -> str:
    weight = _("weight layer")
    return f"""digraph plain {{ {_STYLE}
      x [label="x", shape=plaintext, fillcolor=white];
      w1 [label="{weight}"]; g1 [label="ReLU", {_ACT}]; w2 [label="{weight}"]; g2 [label="ReLU", {_ACT}];
      out [label="H(x)", shape=plaintext, fillcolor=white];
      x -> w1 -> g1 -> w2 -> g2 -> out;
    }}"""


def residual_block_dot(_: Translate = untranslated) -> str:
    weight, identity = _("weight layer"), _("identity x")
    return f"""digraph residual {{ {_STYLE}
      x [label="x", shape=plaintext, fillcolor=white];
      w1 [label="{weight}"]; g1 [label="ReLU", {_ACT}]; w2 [label="{weight}"];
      add [{_ADD}]; g2 [label="ReLU", {_ACT}];
      out [label="H(x) = F(x) + x", shape=plaintext, fillcolor=white];
      x -> w1 -> g1 -> w2; w2 -> add [label=" F(x)"];
      x -> add [label=" {identity}", style=dashed, color="#444444", constraint=false];
      add -> g2 -> out;
    }}"""


def ng_block_dot(_: Translate = untranslated) -> str:
    """Andrew Ng's notation: the shortcut carries a[l] past two layers, to before the second g."""
    short_cut = _("a[l] (short cut)")
    return f"""digraph ng {{ {_STYLE} rankdir=LR;
      a0 [label="a[l]", shape=plaintext, fillcolor=white];
      z1 [label="z[l+1] = W[l+1] a[l] + b[l+1]"]; g1 [label="g", {_ACT}];
      z2 [label="z[l+2] = W[l+2] a[l+1] + b[l+2]"]; add [{_ADD}]; g2 [label="g", {_ACT}];
      a2 [label="a[l+2]", shape=plaintext, fillcolor=white];
      a0 -> z1 -> g1; g1 -> z2 [label=" a[l+1]"]; z2 -> add -> g2 -> a2;
      a0 -> add [label=" {short_cut}", style=dashed, color="#444444", constraint=false];
    }}"""


def shortcut_option_dot(option: str, _: Translate = untranslated) -> str:
    """Two blocks with option A, B or C: one where the width doubles (64 to 128 channels, stride 2)
    and one that keeps its size."""
    projection = 'fillcolor="#dbe8f7"'
    projecting, identity = _("projection:"), _("identity")
    subsample, zeros = _("subsample /2,"), _("pad 64 channels of zeros")
    first = {"A": f'label="{subsample}\\n{zeros}", fillcolor="#ffffff"',
             "B": f'label="{projecting}\\n1x1 conv, 128, /2, BN", {projection}',
             "C": f'label="{projecting}\\n1x1 conv, 128, /2, BN", {projection}'}[option]
    second = (f's2 [label="{projecting}\\n1x1 conv, 128, BN", {projection}]; r1 -> s2 [style=dashed]; '
              's2 -> add2 [style=dashed];' if option == "C" else
              f'r1 -> add2 [label=" {identity}", style=dashed, color="#444444"];')
    before, after = _("x: 64 channels, 32x32"), _("128 channels, 16x16")
    return f"""digraph option{option} {{ {_STYLE}
      x [label="{before}", shape=plaintext, fillcolor=white];
      f1 [label="3x3 conv, 128, /2, BN, ReLU\\n3x3 conv, 128, BN"]; s1 [{first}];
      add1 [{_ADD}]; r1 [label="ReLU", {_ACT}];
      f2 [label="3x3 conv, 128, BN, ReLU\\n3x3 conv, 128, BN"]; add2 [{_ADD}]; r2 [label="ReLU", {_ACT}];
      out [label="{after}", shape=plaintext, fillcolor=white];
      x -> f1 -> add1; x -> s1 [style=dashed]; s1 -> add1 [style=dashed]; add1 -> r1 -> f2 -> add2;
      {second}
      add2 -> r2 -> out;
    }}"""


def bottleneck_dot(_: Translate = untranslated) -> str:
    reduce, restore = _("1x1 conv, 64 (reduce)"), _("1x1 conv, 256 (restore), BN")
    identity = _("identity")
    return f"""digraph bottleneck {{ {_STYLE}
      x [label="256-d", shape=plaintext, fillcolor=white];
      c1 [label="{reduce}"]; g1 [label="BN, ReLU", {_ACT}];
      c2 [label="3x3 conv, 64"]; g2 [label="BN, ReLU", {_ACT}];
      c3 [label="{restore}"]; add [{_ADD}]; g3 [label="ReLU", {_ACT}];
      out [label="256-d", shape=plaintext, fillcolor=white];
      x -> c1 -> g1 -> c2 -> g2 -> c3 -> add -> g3 -> out;
      x -> add [label=" {identity}", style=dashed, color="#444444", constraint=false];
    }}"""
