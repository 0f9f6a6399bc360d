"""One frozen config per concern; the CLI's flags are generated from these fields.

Defaults are the paper's CIFAR recipe (section 4.2): SGD with momentum 0.9, learning rate 0.1,
weight decay 1e-4, batch 128, the learning rate divided by 10 at 50% and 75% of training, He
initialisation; optionally a warm-up at 0.01 as for ResNet-110.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field


def _flag(help: str, flag: str | None = None, **extra) -> dict:
    return {"help": help, "flag": flag, **extra}


@dataclass(frozen=True)
class ModelConfig:
    name: str = field(default="cifar-resnet20", metadata=_flag("registry name, e.g. cifar-plain56", "model"))
    shortcut: str | None = field(default=None, metadata=_flag("shortcut option A, B or C (default: the family's)"))


@dataclass(frozen=True)
class DataConfig:
    dataset: str = field(default="shapes", metadata=_flag("shapes, shapes-easy (no clutter), cifar10 or folder:PATH"))
    train_size: int | None = field(default=None, metadata=_flag("use this many training images (default: all)"))
    test_size: int | None = field(default=None, metadata=_flag("use this many test images (default: all)"))
    image_size: int = field(default=32, metadata=_flag("image side in pixels: shapes are drawn at it, other sets resized"))
    augment: bool = field(default=True, metadata=_flag("pad-4 random crop and horizontal flip, as the paper"))
    data_dir: str | None = field(default=None, metadata=_flag("folder holding downloaded data (cifar10)"))


@dataclass(frozen=True)
class OptimConfig:
    steps: int | None = field(default=None, metadata=_flag("training steps (batches); or give --epochs"))
    epochs: float | None = field(default=None, metadata=_flag("training epochs; or give --steps"))
    batch_size: int = field(default=128, metadata=_flag("images per step"))
    lr: float = field(default=0.1, metadata=_flag("initial learning rate"))
    momentum: float = field(default=0.9, metadata=_flag("SGD momentum"))
    weight_decay: float = field(default=1e-4, metadata=_flag("L2 weight decay"))
    lr_milestones: tuple[float, ...] = field(default=(0.5, 0.75),
                                             metadata=_flag("fractions of training where the lr drops"))
    lr_decay: float = field(default=0.1, metadata=_flag("factor the lr is multiplied by at each milestone"))
    warmup_steps: int = field(default=0, metadata=_flag("steps at --warmup-lr before --lr (ResNet-110: ~400)"))
    warmup_lr: float = field(default=0.01, metadata=_flag("learning rate during warm-up"))


@dataclass(frozen=True)
class ProbeConfig:
    probe_every: int = field(default=10, metadata=_flag("record layer responses and gradient flow every K steps; 0: off"))
    probe_batch: int = field(default=32, metadata=_flag("held-out images for the layer-response probe (each std pools 32 x H x W values per channel)"))
    log_every: int = field(default=10, metadata=_flag("write training loss and error every K steps"))
    eval_every: int = field(default=100, metadata=_flag("evaluate on the test set every K steps (and at the end)"))
    checkpoint_every: int = field(default=200, metadata=_flag("save a resumable checkpoint every K steps"))


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    seed: int = field(default=0, metadata=_flag("random seed (weights, data order, augmentation)"))
    device: str = field(default="auto", metadata=_flag("auto, cpu, cuda or mps"))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict) -> "RunConfig":
        return cls(
            model=ModelConfig(**record.get("model", {})),
            data=DataConfig(**record.get("data", {})),
            optim=OptimConfig(**{k: tuple(v) if k == "lr_milestones" else v for k, v in record.get("optim", {}).items()}),
            probes=ProbeConfig(**record.get("probes", {})),
            seed=record.get("seed", 0),
            device=record.get("device", "auto"),
        )

    def replace(self, **sections) -> "RunConfig":
        return dataclasses.replace(self, **sections)


def validate(config: RunConfig, check_dataset: bool = True) -> None:
    """Refuse impossible settings with one sentence; called before a run starts.

    ``check_dataset=False`` when the caller hands the data in (a notebook, a benchmark).
    """
    from explorer.data.datasets import DATASET_NAMES, POINT_DATASETS
    from explorer.models import resolve

    resolve(config.model.name)
    dataset = config.data.dataset
    if check_dataset and not (dataset in DATASET_NAMES or dataset in POINT_DATASETS or dataset.startswith("folder:")):
        raise ValueError(f"unknown data set {dataset!r}; valid: shapes, shapes-easy (built in, offline), cifar10, "
                         "folder:PATH")
    if dataset == "folder:":
        raise ValueError("folder: needs a path, e.g. folder:/data/flowers")
    from explorer.data.datasets import check_image_size

    check_image_size(config.data.image_size)
    optim, probes = config.optim, config.probes
    if (optim.steps is None) == (optim.epochs is None):
        raise ValueError("give exactly one of --steps or --epochs")
    if optim.steps is not None and not 1 <= optim.steps <= 10_000_000:
        raise ValueError(f"--steps must be from 1 to 10,000,000, got {optim.steps}")
    if optim.epochs is not None and not 0 < optim.epochs <= 100_000:
        raise ValueError(f"--epochs must be positive, got {optim.epochs}")
    if not 1 <= optim.batch_size <= 65_536:
        raise ValueError(f"--batch-size must be from 1 to 65,536, got {optim.batch_size}")
    if not 0 < optim.lr <= 10:
        raise ValueError(f"--lr must be in (0, 10], got {optim.lr}")
    if not 0 <= optim.momentum < 1 or optim.weight_decay < 0:
        raise ValueError("--momentum must be in [0, 1) and --weight-decay >= 0")
    if any(not 0 < m < 1 for m in optim.lr_milestones):
        raise ValueError(f"--lr-milestones are fractions of training in (0, 1), got {optim.lr_milestones}")
    for name in ("probe_every", "log_every", "eval_every", "checkpoint_every", "probe_batch"):
        if getattr(probes, name) < 0 or (name != "probe_every" and getattr(probes, name) == 0):
            raise ValueError(f"--{name.replace('_', '-')} must be positive")


# ---------------------------------------------------------------------------------------------
# The CLI's flags, generated from the fields above so the UI, the CLI and notebooks agree.

SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "probes": ProbeConfig}


def _flag_name(section_field: dataclasses.Field) -> str:
    return "--" + (section_field.metadata.get("flag") or section_field.name).replace("_", "-")


def _base_type(annotation) -> type:
    hints = [arg for arg in typing.get_args(annotation) if arg is not type(None)] or [annotation]
    return hints[0]


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for section, section_cls in SECTIONS.items():
        hints = typing.get_type_hints(section_cls)
        for item in dataclasses.fields(section_cls):
            kind = _base_type(hints[item.name])
            dest = f"{section}.{item.name}"
            help_text = f"{item.metadata.get('help', '')} (default: {item.default})"
            if kind is bool:
                parser.add_argument(_flag_name(item), dest=dest, action=argparse.BooleanOptionalAction,
                                    default=None, help=help_text)
            elif typing.get_origin(kind) is tuple:
                parser.add_argument(_flag_name(item), dest=dest, default=None, help=help_text + "; comma-separated",
                                    type=lambda text: tuple(float(part) for part in text.split(",") if part.strip()))
            else:
                parser.add_argument(_flag_name(item), dest=dest, type=kind, default=None, help=help_text)
    for item in dataclasses.fields(RunConfig):
        if item.name not in SECTIONS:
            parser.add_argument(_flag_name(item), dest=item.name, type=type(item.default), default=None,
                                help=f"{item.metadata.get('help', '')} (default: {item.default})")


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The config the flags describe, over ``base`` (the defaults when None)."""
    base = base or RunConfig()
    values = vars(args)
    sections = {}
    for section, section_cls in SECTIONS.items():
        changes = {item.name: values[f"{section}.{item.name}"] for item in dataclasses.fields(section_cls)
                   if values.get(f"{section}.{item.name}") is not None}
        sections[section] = dataclasses.replace(getattr(base, section), **changes)
    top = {item.name: values[item.name] for item in dataclasses.fields(RunConfig)
           if item.name not in SECTIONS and values.get(item.name) is not None}
    return dataclasses.replace(base, **sections, **top)


def dumps(config: RunConfig) -> str:
    return json.dumps(config.to_json(), indent=1)


def build_parser_flags() -> set[str]:
    """Every flag ``add_config_flags`` defines (for tests and help texts)."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return {option for action in parser._actions for option in action.option_strings}
