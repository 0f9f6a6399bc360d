"""Presets that reproduce the paper's training figures, each honest about what it can show.

On a GPU a preset runs the paper's schedule (64k iterations at batch 128 on 32x32 images, the
learning rate divided by 10 at 32k and 48k, section 4.2). On a 2-core CPU it runs a schedule
chosen so that, in at most a minute for four nets at once, each claim its text makes holds on at
least 9 of 10 seeds (bench/presets.py records the ten-seed table; the pages quote it):

- ``shapes-easy`` (the built-in shapes without clutter) at 16x16 pixels. At 32x32 ResNet-20 took
  2.7 times as long; on the cluttered ``shapes`` every net was still near chance after 150 steps.
- No augmentation. The paper's pad-4 crop moves a 16-pixel image by up to a quarter of its side:
  ResNet-56 after 160 steps at lr 0.02 ended at 52-57% training error without it, 71-76% with it
  (three seeds each).
- 140 steps at batch 64: the four nets of Fig. 6 in about 55 s on 2 cores as the app runs them
  (160 steps took 61 s, 300 steps 107 s). A CPU that computes bfloat16 natively (AVX512-BF16)
  trains them in about 23 s, on shapes-easy or real images. Twice the steps there (at lr 0.02 or
  0.05), or 200 steps at batch 96, made no claim hold more firmly and still left ResNet-56 behind
  ResNet-20 (bench/results/preset-schedules-shapes-cpu-bf16-*), so every CPU runs this one
  schedule: its records compare across machines, and a faster machine answers the class sooner.
- lr 0.02, divided by 10 for the last 10% of the steps. ResNet-56 after 160 steps (with
  augmentation) ended at 81-86% training error at lr 0.05, 73-74% at 0.02, 87-90% at 0.1 with or
  without a warm-up: in a run this short a lower rate learns faster. Dropping it at 50% and 75%,
  as the paper does over 64k iterations, stops a short run halfway.

Short runs show only part of the paper: deep plain nets fall behind shallow ones and ResNets of
the same depth pull ahead, but a deeper ResNet beats a shallower one only after the long schedule.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import os
from pathlib import Path

from explorer.data import cifar10
from explorer.data.base import CIFAR10, FOLDER_PREFIX, check_dataset_name
from explorer.i18n import N_, Translate, untranslated
from explorer.measurements import latest
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig

MEASURED_ON_CPU = "presets-cpu"  # bench/presets.py's record: what each CPU preset showed, per seed
MEASURED_ON_REAL_IMAGES = "presets-real-images-cpu"  # the same on real CIFAR-10 images
# Records of CPUs that train in bfloat16 by default (AVX512-BF16 or AMX) carry this after the names above:
# a one-minute run's orders depend on its precision, so each kind of machine quotes its own.
BF16_RECORD = "-bf16"
HOLDS_ON_SHARE = 0.9  # a claim a page makes holds on at least 9 of 10 recorded seeds
REAL_IMAGES_ENV = "RESNET_EXPLORER_REAL_IMAGES"  # a data set of real images the CPU presets default to


def real_images_on_machine() -> str | None:
    """The data set of real images the CPU presets train on by default, or None where there is none.

    A class would rather see real images: ``$RESNET_EXPLORER_REAL_IMAGES`` names one (``cifar10``,
    or ``folder:PATH`` laid out as CIFAR-10's classes), else CIFAR-10 once it has been downloaded
    (explorer/data/cifar10.py). Only what is already on the machine counts: nothing is downloaded
    for a default, and a name that does not resolve is passed over.
    """
    named = os.environ.get(REAL_IMAGES_ENV, "").strip()
    if named:
        try:
            name = check_dataset_name(named)
        except ValueError:
            name = None
        if name == CIFAR10 and cifar10.on_machine():
            return name
        if name and name.startswith(FOLDER_PREFIX) and (Path(name[len(FOLDER_PREFIX):]).expanduser() / "train").is_dir():
            return name
    return CIFAR10 if cifar10.on_machine() else None


def is_real_images(dataset: str) -> bool:
    return not dataset.startswith("shapes")


def cpu_trains_in_bf16() -> bool:
    """Whether a run's ``auto`` precision on this machine's CPU is bfloat16 (explorer/train/precision.py)."""
    import torch

    from explorer.train.precision import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))[0] == "bf16"


# What a preset's text may claim, each checked on every seed by bench/presets.py: ``left``'s
# ``measure`` is below ``right``'s. Training error is the mean of the last three logs; the response
# std is the mean over 3x3 layers of the saved weights (the final probe).
CLAIMS: dict[str, dict] = {
    "plain56_behind_plain20": {"text": N_("plain-56 trains worse than plain-20"), "measure": "train_error",
                               "left": "cifar-plain20", "right": "cifar-plain56"},
    "resnet56_ahead_of_plain56": {"text": N_("ResNet-56 trains better than plain-56"), "measure": "train_error",
                                  "left": "cifar-resnet56", "right": "cifar-plain56"},
    "resnet20_ahead_of_plain20": {"text": N_("ResNet-20 trains better than plain-20"), "measure": "train_error",
                                  "left": "cifar-resnet20", "right": "cifar-plain20"},
    "resnet56_ahead_of_resnet20": {"text": N_("ResNet-56 trains better than ResNet-20 (the paper's long-schedule result, "
                                           "not claimed here)"), "measure": "train_error",
                                   "left": "cifar-resnet56", "right": "cifar-resnet20"},
    "resnet56_smaller_responses": {"text": N_("ResNet-56's layer responses are smaller than plain-56's"),
                                   "measure": "mean_response_std", "left": "cifar-resnet56", "right": "cifar-plain56"},
    "resnet20_smaller_responses": {"text": N_("ResNet-20's layer responses are smaller than plain-20's"),
                                   "measure": "mean_response_std", "left": "cifar-resnet20", "right": "cifar-plain20"},
}


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    train_size: int | None  # images of the data set (None: all; shapes: 50,000)
    test_size: int | None
    log_every: int
    eval_every: int
    probe_every: int
    dataset: str = "shapes"  # the default; the page may pick another
    image_size: int = 32
    lr: float = 0.1
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    warmup_steps: int = 0
    augment: bool = True  # the paper's pad-4 crop and flip


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    cpu_models: tuple[str, ...]
    gpu_models: tuple[str, ...]
    cpu: Schedule
    gpu: Schedule
    shows: str  # one line: what the CPU version shows
    cannot: str  # one line: what it cannot, and what the GPU version adds
    details: str  # the rest, for an expander: why the schedule, what to look at
    claims: tuple[str, ...] = ()  # keys of CLAIMS its texts rest on, measured by bench/presets.py
    cpu_title: str | None = None  # the title when the CPU version trains fewer nets than the title names
    shows_rests_on: tuple[str, ...] = ()  # the claims ``shows`` states: each must hold on 9 of 10 recorded seeds
    shows_if_unheld: str | None = None  # the two lines when the record has one of them on fewer seeds
    cannot_if_unheld: str | None = None

    def lines(self, device_type: str, dataset: str | None = None) -> tuple[str, str]:
        """(what it shows, what it cannot): the lines a page may say for the data the CPU version trains on.

        ``shows`` states claims; where bench/presets.py's record for that kind of data (the built-in
        shapes, or real images) has one of them on fewer than 9 of 10 seeds, the page says the other
        lines, which do not make it. A machine's kernels decide some orders in a one-minute run: the
        record is of the machine it names, and re-measuring can move a claim either way.
        """
        if device_type == "cuda" or not self.shows_rests_on or self.shows_if_unheld is None:
            return self.shows, self.cannot
        recorded = self.measured_record(dataset)
        summary = recorded.data.get("summary", {}).get(self.key) if recorded else None
        if not summary:
            return self.shows, self.cannot
        seeds = len(recorded.data.get("seeds", ())) or 1
        counts = summary.get("claims_held_on_seeds", {})
        if all(counts.get(claim, 0) >= HOLDS_ON_SHARE * seeds for claim in self.shows_rests_on):
            return self.shows, self.cannot
        return self.shows_if_unheld, self.cannot_if_unheld or self.cannot

    def measured_record(self, dataset: str | None = None):
        """The newest record for this data's kind, of a machine that trains in the precision this one
        does by default; a machine of the other kind's where its own kind has none."""
        real = is_real_images(dataset or self.default_dataset("cpu"))
        name = MEASURED_ON_REAL_IMAGES if real else MEASURED_ON_CPU
        own, other = (name + BF16_RECORD, name) if cpu_trains_in_bf16() else (name, name + BF16_RECORD)
        return latest(own) or latest(other)

    def title_on(self, device_type: str) -> str:
        """The title that names the nets this device trains."""
        return self.title if device_type == "cuda" or self.cpu_title is None else self.cpu_title

    def models(self, device_type: str) -> tuple[str, ...]:
        return self.gpu_models if device_type == "cuda" else self.cpu_models

    def schedule(self, device_type: str) -> Schedule:
        return self.gpu if device_type == "cuda" else self.cpu

    def default_dataset(self, device_type: str) -> str:
        """The schedule's data; on a CPU, real images where the machine has them (``real_images_on_machine``)."""
        if device_type == "cuda":
            return self.gpu.dataset
        return real_images_on_machine() or self.cpu.dataset

    def describe(self, device_type: str, dataset: str | None = None, _: Translate = untranslated) -> str:
        schedule = self.schedule(device_type)
        where = (_("the paper's schedule on this GPU") if device_type == "cuda" else
                 _("a short schedule for this CPU"))
        data = (_("{images:,} images").format(images=schedule.train_size) if schedule.train_size else
                _("all training images"))
        augment = (_("with the paper's augmentation (pad-4 crop, flip)") if schedule.augment else
                   _("without augmentation (the paper crops and flips)"))
        return _("{where}: {models}, all at once; {steps:,} steps at batch {batch}, lr {lr:g} divided by 10 at "
                 "{drops} of the steps, on {data} of {dataset} at {size}x{size} pixels, {augment}.").format(
            where=where, models=", ".join(self.models(device_type)), steps=schedule.steps, batch=schedule.batch_size,
            lr=schedule.lr, drops=_(" and ").join(f"{fraction:.0%}" for fraction in schedule.lr_milestones), data=data,
            dataset=dataset or self.default_dataset(device_type), size=schedule.image_size, augment=augment)

    def measured_on_cpu(self, dataset: str | None = None, _: Translate = untranslated) -> str | None:
        """What bench/presets.py recorded for this preset on a CPU, on ``dataset``'s kind of data (the
        built-in shapes, or real images), as markdown; None if nothing is recorded."""
        real = is_real_images(dataset or self.default_dataset("cpu"))
        recorded = self.measured_record(dataset)
        summary = recorded.data.get("summary", {}).get(self.key) if recorded else None
        if not summary:
            return None
        seeds = len(recorded.data.get("seeds", ()))
        seconds = summary.get("seconds") or []
        on = recorded.data.get("dataset_note") or recorded.data.get("dataset") or ""
        lines = [_("Measured by bench/presets.py on {device}, {date}, on {seeds} seeds, the nets trained as the app "
                   "trains them ({source}).").format(device=recorded.device, date=recorded.date, seeds=seeds,
                                                     source=recorded.source)]
        recorded_precision = recorded.data.get("precision", "fp32")  # records before precisions were chosen: fp32
        lines[0] += " " + (_("In bfloat16, as this project trains on a CPU that computes it natively.")
                           if recorded_precision == "bf16" else _("In float32."))
        if (recorded_precision == "bf16") != cpu_trains_in_bf16():
            lines[0] += " " + (_("This machine trains in bfloat16, and has no record of its own kind yet: its "
                                 "numbers may differ.") if cpu_trains_in_bf16() else
                               _("This machine trains in float32, and has no record of its own kind yet: its numbers "
                                 "may differ."))
        if real:
            lines[0] += " " + _("Real images: {data}.").format(data=on)
        if seconds:
            lines[0] += " " + _("{fastest:.0f}-{slowest:.0f} s from submitting them to the last run's end.").format(
                fastest=min(seconds), slowest=max(seconds))
        lines.append("")
        for claim, count in summary.get("claims_held_on_seeds", {}).items():
            translate = _  # the claims' texts are marked with N_ where they are defined
            text = translate(CLAIMS[claim]["text"]) if claim in CLAIMS else claim
            lines.append(_("- {claim}: on {count} of {seeds} seeds").format(claim=text, count=count, seeds=seeds))
        repeat = summary.get("repeat")
        if repeat:
            lines.append((_("- seed {seed} run twice: the same curves") if repeat["same_curves"] else
                          _("- seed {seed} run twice: different curves")).format(seed=repeat["seed"]))
        errors = {}
        for run in recorded.data.get("runs", {}).get(self.key, []):
            for model, numbers in run.get("models", {}).items():
                errors.setdefault(model, []).append(numbers["train_error"])
        finals = ", ".join(f"{_short_name(model)} {min(values):.0%}-{max(values):.0%}" for model, values in errors.items())
        lines += ["", _("Final training error over the seeds: {finals}.").format(finals=finals)]
        return "\n".join(lines)

    def configs(self, device_type: str, dataset: str | None = None, seed: int = 0, precision: str = "auto",
                compile: str = "auto") -> list[RunConfig]:
        """One RunConfig per model, the same data, seed and schedule for all."""
        schedule = self.schedule(device_type)
        configs = []
        for name in self.models(device_type):
            # ResNet-110 starts at lr 0.01 until training error is below 80% (~400 iterations), as the paper.
            warmup = 400 if device_type == "cuda" and name.endswith("110") else schedule.warmup_steps
            configs.append(RunConfig(
                model=ModelConfig(name=name),
                data=DataConfig(dataset=dataset or self.default_dataset(device_type), train_size=schedule.train_size,
                                test_size=schedule.test_size, image_size=schedule.image_size,
                                augment=schedule.augment),
                optim=OptimConfig(steps=schedule.steps, batch_size=schedule.batch_size, lr=schedule.lr,
                                  lr_milestones=schedule.lr_milestones, warmup_steps=warmup),
                probes=ProbeConfig(probe_every=schedule.probe_every, log_every=schedule.log_every,
                                   eval_every=schedule.eval_every, checkpoint_every=max(schedule.eval_every, 100)),
                seed=seed,
                device=device_type if device_type in ("cuda", "mps") else "cpu",
                precision=precision,
                compile=compile,
            ))
        return configs


def _short_name(model: str) -> str:
    """``cifar-resnet56`` -> ``ResNet-56``, as the paper names them."""
    name = re.sub(r"(\D)(\d+)$", r"\1-\2", model.removeprefix("cifar-"))
    return name.replace("preact-resnet", "pre-act ResNet").replace("resnet", "ResNet")


PAPER_SCHEDULE = Schedule(steps=64_000, batch_size=128, train_size=None, test_size=None, log_every=100,
                          eval_every=1_000, probe_every=500)
CPU_STEPS = 140


def cpu_schedule(probe_every: int) -> Schedule:
    """At most a minute for four CIFAR nets at once on 2 cores (see the module docstring)."""
    return Schedule(steps=CPU_STEPS, batch_size=64, train_size=5_000, test_size=500, log_every=5, eval_every=40,
                    probe_every=probe_every, dataset="shapes-easy", image_size=16, lr=0.02, lr_milestones=(0.9,),
                    augment=False)


PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            key="fig1",
            title=N_("Fig. 1: plain-20 vs plain-56"),
            cpu_models=("cifar-plain20", "cifar-plain56"),
            gpu_models=("cifar-plain20", "cifar-plain56"),
            cpu=cpu_schedule(probe_every=20),
            gpu=PAPER_SCHEDULE,
            shows=N_("the deeper plain net trains worse: plain-56's training error stays above plain-20's, so it is "
                  "not overfitting."),
            cannot=N_("the paper's converged curves on CIFAR-10 (64k iterations: the GPU version of this preset)."),
            details=N_("In a minute both nets are far from converged and the curves vary from seed to seed; the counts "
                    "below say on how many seeds the deeper net ended behind. The schedule is shortened for the "
                    "CPU and runs without augmentation (the paper crops and flips), on the built-in shapes, or on "
                    "real CIFAR-10 images where this machine has them; the nets are the paper's."),
            claims=("plain56_behind_plain20",),
            shows_rests_on=("plain56_behind_plain20",),
            shows_if_unheld=N_("plain-20 and plain-56 side by side; on this data, in a minute, which one ends behind "
                               "depends on the seed (the counts below)."),
        ),
        Preset(
            key="fig6",
            title=N_("Fig. 6: plain and ResNet at 20/32/44/56 (and 110)"),
            cpu_title=N_("Fig. 6: plain and ResNet at 20 and 56 (a GPU adds 32, 44 and 110)"),
            cpu_models=("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56"),
            gpu_models=("cifar-plain20", "cifar-plain32", "cifar-plain44", "cifar-plain56", "cifar-resnet20",
                        "cifar-resnet32", "cifar-resnet44", "cifar-resnet56", "cifar-resnet110"),
            cpu=cpu_schedule(probe_every=20),
            gpu=PAPER_SCHEDULE,
            shows=N_("plain-56 behind plain-20, and each ResNet ahead of the plain net of its depth (ResNet-56 far "
                  "ahead of plain-56): the shortcuts remove the degradation."),
            cannot=N_("a deeper ResNet ahead of a shallower one: in a minute that depends on the seed; in the paper it "
                   "comes with the long schedule (the GPU version, depths 20 to 110)."),
            details=N_("The schedule is shortened for the CPU and runs without augmentation (the paper crops and "
                    "flips), on the built-in shapes, or on real CIFAR-10 images where this machine has them; the nets "
                    "are the paper's (option A shortcuts). Depths 32, 44 and 110 run only on a GPU."),
            claims=("plain56_behind_plain20", "resnet56_ahead_of_plain56", "resnet20_ahead_of_plain20",
                    "resnet56_ahead_of_resnet20"),
            shows_rests_on=("plain56_behind_plain20", "resnet56_ahead_of_plain56", "resnet20_ahead_of_plain20"),
            shows_if_unheld=N_("plain and residual nets side by side; on this data, in a minute, the order of some "
                               "curves depends on the seed (the counts below say which held)."),
        ),
        Preset(
            key="fig7",
            title=N_("Fig. 7: layer responses of ResNet-20/56/110 vs plain"),
            cpu_title=N_("Fig. 7: layer responses of ResNet-20/56 vs plain (a GPU adds ResNet-110)"),
            cpu_models=("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56"),
            gpu_models=("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56", "cifar-resnet110"),
            cpu=cpu_schedule(probe_every=10),
            gpu=PAPER_SCHEDULE,
            shows=N_("the std of each 3x3 layer's response as the nets train (open Layer responses): ResNet-20's are "
                  "smaller than plain-20's, as in the paper."),
            cannot=N_("the gap at depth 56 on 9 of 10 seeds (the counts below say on how many it formed), nor "
                      "responses of fully trained nets or ResNet-110's (GPU only)."),
            details=N_("The same four nets and schedule as the Fig. 6 preset, probed every 10 steps; the last probe is "
                    "of the weights each run saves. The paper measures trained nets; these have trained for a "
                    "minute, so compare the counts below before reading much into the gap."),
            claims=("resnet56_smaller_responses", "resnet20_smaller_responses"),
            shows_rests_on=("resnet20_smaller_responses",),
            shows_if_unheld=N_("the std of each 3x3 layer's response as the nets train (open Layer responses); in a "
                               "minute, whether a ResNet's responses are smaller than its plain twin's depends on the "
                               "seed (the counts below)."),
            cannot_if_unheld=N_("the paper's smaller responses in the ResNets on 9 of 10 one-minute runs, nor "
                                "ResNet-110's (GPU only). Fully trained ResNets: the published converged ones on the "
                                "Layer responses page."),
        ),
    )
}


SHORT_RUN_STEPS = 10_000  # below this, the learning rate drops once, for the last 10% (module docstring)


def custom_configs(models: list[str], dataset: str, steps: int, batch_size: int, lr: float, device: str,
                   train_size: int | None = None, seed: int = 0, image_size: int = 32,
                   augment: bool = True, precision: str = "auto", compile: str = "auto") -> list[RunConfig]:
    """The same settings for every model, for a comparison the user builds.

    The learning rate drops by 10 at 50% and 75% of the steps, as the paper, for runs of
    SHORT_RUN_STEPS or more; shorter runs drop it once, at 90%, as the CPU presets do.
    """
    log_every = max(1, min(50, steps // 40))
    milestones = (0.5, 0.75) if steps >= SHORT_RUN_STEPS else (0.9,)
    base = RunConfig(
        data=DataConfig(dataset=dataset, train_size=train_size, test_size=min(2_000, train_size or 10_000),
                        image_size=image_size, augment=augment),
        optim=OptimConfig(steps=steps, batch_size=batch_size, lr=lr, lr_milestones=milestones),
        probes=ProbeConfig(probe_every=max(1, steps // 20), log_every=log_every, eval_every=max(log_every, steps // 10),
                           checkpoint_every=max(100, steps // 10)),
        seed=seed, device=device, precision=precision, compile=compile,
    )
    return [dataclasses.replace(base, model=ModelConfig(name=name)) for name in models]
