"""The playground's settings, and their three ways in: the page's widgets, a URL's query, the CLI's flags.

Each field of ``PlaygroundSettings`` carries its help and its limits (``explorer/fields.py``, the
convention every config in the project follows), so the widgets, the query parameters and the
flags accept exactly the same values and refuse the rest with the same sentence. The query
parameters are named like the fields, and the flags like the fields with dashes (``--batch-size``);
both are contracts: shared links and scripts use them.

The optimiser is Adam by default: one learning rate that works for the first layer and the last
of a 50-layer net, although their gradients differ by orders of magnitude. Measured on the spiral
at depth 50 (seed 0, 1000 steps, while choosing the defaults): SGD with momentum at lr 0.03 made the
residual net diverge and left the plain net at chance; with Adam at lr 0.001 the residual net fits
the spiral in a few hundred steps while the plain net stays at chance (bench/results/playground-*,
three seeds). SGD stays available as a setting.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Mapping

from explorer.data.base import POINT_DATASETS
from explorer.fields import add_flags, check_fields, parse_value, setting, specs, to_text, values_from_args
from explorer.i18n import N_, Translate, untranslated
from explorer.models.mlp import ACTIVATIONS, INITS

NETS = {"both": ("plain", "residual"), "plain": ("plain",), "residual": ("residual",)}
NORMS = ("none", "batchnorm")
OPTIMISERS = ("adam", "sgd")


@dataclass(frozen=True)
class PlaygroundSettings:
    """Everything that defines a playground; the page, the URL and the CLI share these limits."""

    dataset: str = setting("spiral", help=N_("2-D data set"), choices=POINT_DATASETS)
    noise: float = setting(0.05, help=N_("std of the Gaussian noise on both coordinates (the points lie in "
                                         "about [-1, 1]^2)"), low=0.0, high=0.5)
    points: int = setting(500, help=N_("points in all, split into training and test"), low=20, high=5000)
    train_percent: int = setting(50, help=N_("percentage of the points used for training; the rest are the "
                                                 "test set"), low=10, high=90)
    depth: int = setting(50, help=N_("hidden layers"), low=1, high=300)
    width: int = setting(16, help=N_("units per hidden layer"), low=1, high=256)
    activation: str = setting("relu", help=N_("activation g"), choices=ACTIVATIONS)
    norm: str = setting("none", help=N_("normalisation after each hidden layer's linear map"), choices=NORMS)
    init: str = setting("pytorch", help=N_("initial weights: pytorch (nn.Linear's default) or he "
                                           "(N(0, 2/fan_in), zero biases)"), choices=INITS)
    # No flag of its own: the CLI trains one net, chosen with --plain or --residual.
    nets: str = setting("both", help=N_("which nets: plain, residual or both side by side"), choices=NETS)
    optimiser: str = setting("adam", help=N_("adam, or sgd with momentum 0.9"), choices=OPTIMISERS)
    lr: float = setting(0.001, help=N_("learning rate"), low=1e-6, high=1.0)
    batch_size: int = setting(32, help=N_("points per training step"), low=1, high=1024)
    seed: int = setting(0, help=N_("random seed: data, initial weights and batch order"), low=0, high=2**31 - 1)

    @property
    def train_size(self) -> int:
        return max(1, round(self.points * self.train_percent / 100))

    @property
    def test_size(self) -> int:
        return max(1, self.points - self.train_size)

    @property
    def kinds(self) -> tuple[str, ...]:
        return NETS[self.nets]

    def validate(self) -> "PlaygroundSettings":
        check_fields(self)
        if self.norm == "batchnorm" and self.batch_size < 2:
            raise ValueError("BatchNorm needs a batch of at least 2 points (batch_size=1 given)")
        return self

    def replace(self, **changes) -> "PlaygroundSettings":
        return dataclasses.replace(self, **changes)


DEFAULTS = PlaygroundSettings()
# Settings a running playground takes on at once; any other change builds new nets (a reset).
LIVE_FIELDS = ("lr", "batch_size")


def settings_from_query(params: Mapping[str, str | list[str]], _: Translate = untranslated
                        ) -> tuple[PlaygroundSettings, list[str]]:
    """Settings from a URL's query parameters, and one message per parameter that was not valid
    (in the page's language ``_``; the value's own complaint stays as the fields give it).

    A bad or missing value falls back to its default; parameters that are not settings are ignored.
    """
    values, problems = {}, []
    for name, spec in specs(PlaygroundSettings).items():
        if name not in params:
            continue
        raw = params[name]
        text = raw[-1] if isinstance(raw, (list, tuple)) and raw else raw
        try:
            values[name] = parse_value(spec, text)
        except ValueError as error:
            problems.append(_("URL parameter {name}: {error}; using the default, {default}.").format(
                name=name, error=error, default=spec.default))
    settings = DEFAULTS.replace(**values)
    try:
        settings.validate()
    except ValueError as error:
        problems.append(_("URL parameters: {error}; using the default batch size and normalisation.").format(
            error=error))
        settings = settings.replace(norm=DEFAULTS.norm, batch_size=DEFAULTS.batch_size)
    return settings, problems


def settings_to_query(settings: PlaygroundSettings) -> dict[str, str]:
    """Every setting as text, so that a link restores this exact setup even if the defaults change."""
    return {name: to_text(getattr(settings, name)) for name in specs(PlaygroundSettings)}


def add_playground_flags(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--depth``, ... one flag per setting, and ``--plain`` / ``--residual`` for ``nets``."""
    add_flags(parser, PlaygroundSettings, skip=("nets",))
    parser.add_argument("--plain", action="store_true", help="train the plain net (no shortcuts)")
    parser.add_argument("--residual", action="store_true", help="train the residual net (a shortcut per layer)")


def settings_from_args(args: argparse.Namespace) -> PlaygroundSettings:
    """The settings the flags of ``add_playground_flags`` give; a bad value fails as it would in a URL."""
    if args.plain == args.residual:
        raise ValueError("give exactly one of --plain or --residual")
    values = values_from_args(args, PlaygroundSettings)
    return DEFAULTS.replace(**values, nets="plain" if args.plain else "residual").validate()
