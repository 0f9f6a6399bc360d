"""One frozen config per concern; the CLI's flags are generated from these fields.

Defaults are the paper's CIFAR recipe (section 4.2): SGD with momentum 0.9, learning rate 0.1,
weight decay 1e-4, batch 128, the learning rate divided by 10 at 50% and 75% of training, He
initialisation; optionally a warm-up at 0.01 as for ResNet-110.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass

from explorer.data.base import IMAGE_DATASETS_HELP, IMAGE_SIZE_RANGE, check_dataset_name
from explorer.device import DEVICE_CHOICES
from explorer.fields import add_flags, check_fields, setting, values_from_args
from explorer.models import resolve
from explorer.models.blocks import SHORTCUT_OPTIONS
from explorer.models.cost import MAX_BATCH_SIZE
from explorer.train.precision import COMPILE_CHOICES, PRECISION_CHOICES

MAX_STEPS = 10_000_000


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting("cifar-resnet20", help="registry name, e.g. cifar-plain56", flag="model")
    shortcut: str | None = setting(None, help="shortcut option (default: the family's)", choices=SHORTCUT_OPTIONS)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = setting("shapes", help=IMAGE_DATASETS_HELP)
    train_size: int | None = setting(None, help="use this many training images (default: all)", low=1)
    test_size: int | None = setting(None, help="use this many test images (default: all)", low=1)
    image_size: int = setting(32, help="image side in pixels: shapes are drawn at it, other sets resized",
                              low=IMAGE_SIZE_RANGE[0], high=IMAGE_SIZE_RANGE[1])
    augment: bool = setting(True, help="pad-4 random crop and horizontal flip, as the paper")
    data_dir: str | None = setting(None, help="folder holding downloaded data (cifar10)")


@dataclass(frozen=True)
class OptimConfig:
    steps: int | None = setting(None, help="training steps (batches); or give --epochs", low=1, high=MAX_STEPS)
    epochs: float | None = setting(None, help="training epochs; or give --steps", low=0, low_open=True,
                                   high=100_000)
    batch_size: int = setting(128, help="images per step", low=1, high=MAX_BATCH_SIZE)
    lr: float = setting(0.1, help="initial learning rate", low=0, low_open=True, high=10)
    momentum: float = setting(0.9, help="SGD momentum", low=0, high=1, high_open=True)
    weight_decay: float = setting(1e-4, help="L2 weight decay", low=0)
    lr_milestones: tuple[float, ...] = setting((0.5, 0.75), help="fractions of training where the lr drops",
                                               low=0, low_open=True, high=1, high_open=True)
    lr_decay: float = setting(0.1, help="factor the lr is multiplied by at each milestone", low=0, low_open=True,
                              high=1)
    warmup_steps: int = setting(0, help="steps at --warmup-lr before --lr (ResNet-110: ~400)", low=0, high=MAX_STEPS)
    warmup_lr: float = setting(0.01, help="learning rate during warm-up", low=0, low_open=True, high=10)


@dataclass(frozen=True)
class ProbeConfig:
    probe_every: int = setting(10, help="record layer responses and gradient flow every K steps; 0: off", low=0)
    probe_batch: int = setting(32, help="held-out images the layer-response probe runs on", low=1, high=4096)
    log_every: int = setting(10, help="write training loss and error every K steps", low=1)
    eval_every: int = setting(100, help="evaluate on the test set every K steps (and at the end)", low=1)
    checkpoint_every: int = setting(200, help="save a resumable checkpoint every K steps", low=1)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    probes: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    seed: int = setting(0, help="random seed (weights, data order, augmentation)", low=0, high=2**31 - 1)
    device: str = setting("auto", help="where to train", choices=DEVICE_CHOICES)
    precision: str = setting("auto", help="number format of training steps: bf16 autocast where the processor "
                             "computes bfloat16 natively (auto), or as asked; probes always run in fp32",
                             choices=PRECISION_CHOICES)
    compile: str = setting("auto", help="torch.compile the model: auto compiles on CUDA only (on a CPU the "
                           "compile time outweighs what a short run gains; bench/train_throughput.py)",
                           choices=COMPILE_CHOICES)

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
            precision=record.get("precision", "auto"),
            compile=record.get("compile", "auto"),
        )

    def replace(self, **sections) -> "RunConfig":
        return dataclasses.replace(self, **sections)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "probes": ProbeConfig}


def _flag(spec) -> str:
    return spec.flag  # messages name the CLI flag: "--lr must be ..."


def validate(config: RunConfig, check_dataset: bool = True) -> None:
    """Refuse impossible settings with one sentence; called before a run starts.

    Each field's limits are declared with the field (explorer/fields.py); what is checked here
    is what no single field can say. ``check_dataset=False`` when the caller hands the data in
    (a notebook, a benchmark).
    """
    resolve(config.model.name)
    if check_dataset:
        check_dataset_name(config.data.dataset)
    for section in (*[getattr(config, name) for name in SECTIONS], config):
        check_fields(section, label=_flag)
    if (config.optim.steps is None) == (config.optim.epochs is None):
        raise ValueError("give exactly one of --steps or --epochs")


# ---------------------------------------------------------------------------------------------
# The CLI's flags, generated from the fields above so the UI, the CLI and notebooks agree.


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for section, section_cls in SECTIONS.items():
        add_flags(parser, section_cls, dest_prefix=f"{section}.")
    add_flags(parser, RunConfig)


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """The config the flags describe, over ``base`` (the defaults when None); a bad value raises ValueError."""
    base = base or RunConfig()
    sections = {section: dataclasses.replace(getattr(base, section),
                                             **values_from_args(args, section_cls, f"{section}.", label=_flag))
                for section, section_cls in SECTIONS.items()}
    return dataclasses.replace(base, **sections, **values_from_args(args, RunConfig, label=_flag))


def dumps(config: RunConfig) -> str:
    return json.dumps(config.to_json(), indent=1)


def build_parser_flags() -> set[str]:
    """Every flag ``add_config_flags`` defines (for tests and help texts)."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return {option for action in parser._actions for option in action.option_strings}
