"""Lesion study: delete blocks of a trained net at test time and measure its error.

Veit, Wilber and Belongie (NeurIPS 2016, "Residual Networks Behave Like Ensembles of Relatively
Shallow Networks") deleted single blocks of a trained ResNet at test time: the error barely
moved, except at the downsampling blocks, while removing a layer of a plain net (VGG) sent it to
chance; deleting several blocks raised the error smoothly. Their reading: a ResNet behaves like an
ensemble of many paths of different lengths, and no single path is essential.

Deleting a block here means what it meant there: the residual branch is dropped and the block's
output is its shortcut. For a post-activation block (``BasicBlock``, ``Bottleneck``) that is the
block's final activation applied to the shortcut's output, ``act2(shortcut(x))``; for a
pre-activation block, whose addition is its last step, ``shortcut(x)``. A plain block (no
shortcut) whose input and output shapes match is replaced by the identity; a plain block that
changes the shape has nothing to be replaced by and is reported as not deletable.

Deletion is done with forward hooks that replace a block's output, inside a context manager
(``deleted_blocks``) that removes them on leaving, also on error; the model is never copied or
edited. Every variant is scored on the same first N images of the run's own test set, in eval
mode.

``lesion_study`` takes plain data and returns a JSON-able dict, so that it can run in a worker
process; ``progress(done, total)`` counts evaluations. ``load_trained_run`` rebuilds a run's model
and test images for this module and for ``explorer.analysis.landscape``.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from explorer.analysis.runs import run_label
from explorer.data import DeviceLoader, PointDataset, load_dataset
from explorer.device import resolve_device
from explorer.i18n import Translate, untranslated
from explorer.models import resolve
from explorer.models.blocks import BasicBlock, Block, Bottleneck, PreActBlock
from explorer.models.mode import evaluating
from explorer.models.weights import checked_model, load_weights_file
from explorer.threads import cpu_thread_share
from explorer.train.config import RunConfig
from explorer.train.store import ACTIVE_STATES, Run
from explorer.train.trainer import model_options

Progress = Callable[[int, int], None]

DEFAULT_IMAGES = 1000
DEFAULT_DRAWS = 5
EVAL_BATCH = 500  # images per forward pass: bounds the memory of a large test set


# --- the run under study -----------------------------------------------------------------------


@dataclass
class TrainedRun:
    """A run's model with its saved weights, in eval mode on ``device``, and its first test images."""

    run_dir: str
    model_name: str
    label: str
    weights: str  # which weights: "final" or "latest checkpoint at step S of T (still training)"
    model: nn.Module
    batches: list[tuple[torch.Tensor, torch.Tensor]]  # normalised images and labels, EVAL_BATCH at a time
    images: int
    device: torch.device
    notes: list[str] = field(default_factory=list)


def check_count(value, label: str, low: int = 1) -> int:
    """A whole number of at least ``low``, or a one-line ValueError naming ``label``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{label} must be a whole number of at least {low}, got {value!r}")
    return value


def weights_description(run: Run) -> str:
    """Which weights model.pt holds, from status.json: the final ones or the latest checkpoint's."""
    status = run.shown_status()
    state, total, saved = status.get("state"), status.get("total_steps"), status.get("checkpoint_step")
    of = f" of {total}" if total else ""
    if state == "completed":
        return f"final (step {total})" if total else "final"
    at = f"step {saved}{of}" if isinstance(saved, int) and saved > 0 else "its last checkpoint"
    if state in ACTIVE_STATES:
        return f"latest checkpoint at {at} (still training)"
    return f"last saved at {at} (run {state})"


def load_trained_run(run_dir: str | Path, images: int, device: torch.device, study: str) -> TrainedRun:
    """Rebuild a run's model from config.json, data.json and model.pt, and its first ``images`` test images.

    The test set is drawn again with the run's data set, seed and sizes, so it is the run's own;
    images are normalised with data.json's mean and std, as the trainer's loader did. Refuses (one
    line, naming ``study``) a folder that is not a run, a model of the MLP family and a run with
    no saved model yet. A run still training is studied at its latest saved weights.
    """
    run = Run(run_dir)
    if not run.exists():
        raise ValueError(f"{run_dir} is not a run folder (it has no config.json)")
    try:
        config = RunConfig.from_json(run.config())
    except TypeError as error:
        raise ValueError(f"{run.id}: config.json is not a run's settings ({error})") from None
    name = config.model.name
    if resolve(name).family == "mlp":
        raise ValueError(f"{run.id} holds {name}, a deep MLP for 2-D points (a playground net); the {study} is for "
                         "the image nets: the CIFAR and ImageNet ResNets and their plain twins")
    if not (run.path / "model.pt").exists():
        raise ValueError(f"no model.pt yet: {run.id} has not saved weights (a run saves them at each checkpoint "
                         "and when it ends)")
    weights = weights_description(run)  # read before model.pt, which a training run may replace meanwhile
    state_dict = load_weights_file(run.path / "model.pt")
    dataset = load_dataset(config.data.dataset, seed=config.seed, train_size=config.data.train_size,
                           test_size=config.data.test_size, data_dir=config.data.data_dir,
                           image_size=config.data.image_size)
    if isinstance(dataset, PointDataset):
        raise ValueError(f"{run.id} was trained on 2-D points; the {study} is for the image nets")
    info = run.data_info() or {"classes": list(dataset.classes), "image_size": dataset.image_size,
                               "mean": list(dataset.mean), "std": list(dataset.std)}
    if list(dataset.classes) != list(info["classes"]):  # labels would be counted against the wrong classes
        raise ValueError(f"{run.id} knows the classes {', '.join(info['classes'])}; its test set "
                         f"{config.data.dataset} has {', '.join(dataset.classes)}: they must be the same, in that order")
    model = checked_model(name, state_dict, **model_options(config, len(info["classes"]), int(info["image_size"])))
    channels_last = device.type in ("cpu", "cuda")  # as the trainer: faster convolutions on both
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    notes = []
    available = len(dataset.x_test)
    if images > available:
        notes.append(f"asked for {images:,} images; the run's test set has {available:,}, all used")
    count = min(images, available)
    loader = DeviceLoader(dataset.x_test[:count], dataset.y_test[:count], EVAL_BATCH, device=device,
                          mean=info["mean"], std=info["std"], augment=False, shuffle=False,
                          channels_last=channels_last)
    return TrainedRun(str(run.path), name, run_label(run), weights, model, list(loader), count, device, notes)


def evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """(mean cross-entropy, error rate) on ``batches``, in eval mode, fp32; the caller's mode after.

    A NaN or infinite loss is returned as it is (the loss landscape keeps it as a gap).
    """
    device = batches[0][0].device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with evaluating(model), torch.no_grad():
        for images, labels in batches:
            logits = model(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            wrong += (logits.argmax(1) != labels).sum()
            count += len(labels)
    loss, wrong_count = torch.stack([loss_sum, wrong]).tolist()  # the one read back from the device
    return loss / count, wrong_count / count


@contextlib.contextmanager
def cpu_share(device: torch.device):
    """A share of the CPU while several studies or trainings run in this process (explorer/threads.py)."""
    with cpu_thread_share() if device.type == "cpu" else contextlib.nullcontext():
        yield


def json_safe(value):
    """``value`` with every NaN or infinity replaced by None, so that strict JSON can hold it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


# --- deleting blocks ---------------------------------------------------------------------------


def named_blocks(model: nn.Module) -> list[tuple[str, Block]]:
    """The model's blocks (residual or plain), in network order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Block)]


def final_activation(block: Block) -> nn.Module | None:
    """What follows the addition in ``block``: its last ReLU, or None for a pre-activation block."""
    if isinstance(block, PreActBlock):
        return None
    if isinstance(block, Bottleneck):
        return block.act3
    if isinstance(block, BasicBlock):
        return block.act2
    raise ValueError(f"no deletion rule for a {type(block).__name__}; known: BasicBlock, Bottleneck, PreActBlock")


def _branch_dropped(block: Block, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the output ``block`` has without its residual branch."""
    x = inputs[0]
    shortcut = block.shortcut_module
    if shortcut is None:  # a plain block: the identity takes its place
        if x.shape != output.shape:
            raise ValueError(f"a plain block that changes the shape ({tuple(x.shape)} -> {tuple(output.shape)}) "
                             "cannot be replaced by the identity")
        return x
    out = shortcut(x)
    activation = final_activation(block)
    return out if activation is None else activation(out)


@contextmanager
def deleted_blocks(model: nn.Module, names) -> Iterator[nn.Module]:
    """``model`` with the blocks ``names`` deleted (see the module docstring), as hooks removed on leaving."""
    handles = []
    try:
        for name in names:
            block = model.get_submodule(name)
            if not isinstance(block, Block):
                raise ValueError(f"{name} is not a block; blocks: {', '.join(n for n, _block in named_blocks(model))}")
            final_activation(block)  # refuses a block type without a deletion rule before anything runs
            handles.append(block.register_forward_hook(_branch_dropped))
        yield model
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _recording_shapes(model: nn.Module, shapes: dict) -> Iterator[None]:
    """Record each block's (input shape, output shape) per image during the forward passes inside."""

    def record(name):
        def hook(module, inputs, output):
            shapes[name] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))
        return hook

    handles = []
    try:
        for name, block in named_blocks(model):
            handles.append(block.register_forward_hook(record(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _shape_text(shape: tuple) -> str:
    return "x".join(str(size) for size in shape)


def describe_block(block: Block, shape_in: tuple, shape_out: tuple) -> tuple[bool, str]:
    """(deletable, kind): identity, projection or downsampling for a residual block; plain, or a
    shape-changing plain block (not deletable, nothing can take its place)."""
    changes_shape = shape_in != shape_out
    if block.is_residual:
        if changes_shape:
            return True, "downsampling"
        return True, "identity" if isinstance(block.shortcut_module, nn.Identity) else "projection"
    if changes_shape:
        return False, (f"plain, changes shape ({_shape_text(shape_in)} -> {_shape_text(shape_out)}): no identity "
                       "can take its place")
    return True, "plain"


def block_table(model: nn.Module, example: torch.Tensor) -> list[dict]:
    """One row per block in network order: name, deletable, kind, input and output shape per image."""
    shapes: dict = {}
    with _recording_shapes(model, shapes), evaluating(model), torch.no_grad():
        model(example)
    rows = []
    for name, block in named_blocks(model):
        shape_in, shape_out = shapes[name]
        deletable, kind = describe_block(block, shape_in, shape_out)
        rows.append({"name": name, "deletable": deletable, "kind": kind, "shape_in": list(shape_in),
                     "shape_out": list(shape_out)})
    return rows


def random_subsets(names: list[str], max_blocks: int, draws: int, seed: int) -> dict[int, list[tuple[str, ...]]]:
    """For k = 1..max_blocks, ``draws`` random sets of k distinct names each, in network order."""
    rng = random.Random(seed)
    order = {name: index for index, name in enumerate(names)}
    return {k: [tuple(sorted(rng.sample(names, k), key=order.__getitem__)) for _draw in range(draws)]
            for k in range(1, max_blocks + 1)}


def lesion_study(run_dir: str | Path, blocks: int | None = None, images: int = DEFAULT_IMAGES,
                 draws: int = DEFAULT_DRAWS, seed: int = 0, device: str = "cpu",
                 progress: Progress | None = None, clip_blocks: bool = False) -> dict:
    """The test error of a trained run with each block deleted, and with k random blocks deleted.

    ``blocks`` (K): the largest number of blocks deleted at once (default: all deletable ones);
    ``images``: the first N images of the run's test set (all of it if it has fewer);
    ``draws``: random sets drawn for each k = 1..K (a set drawn twice is evaluated once);
    ``seed``: the draws' seed. Returns, JSON-able:

    - ``run_dir``, ``model`` (registry name), ``label``, ``weights`` (see ``weights_description``),
      ``images`` (the count used), ``seconds`` (all of it, loading included), ``device``,
      ``notes``;
    - ``baseline_error``: the error of the intact net on those images;
    - ``blocks``: [{``name``, ``deletable``, ``error`` (None where not deletable), ``kind``,
      ``shape_in``, ``shape_out``}] in network order;
    - ``random_deletions``: [{``k``, ``mean_error``, ``std_error`` (sample std over the draws; 0 for
      one draw), ``draws``}];
    - ``mean_single_increase``: the mean of (single-deletion error - baseline) over deletable blocks.

    Refuses, in one line: a run without model.pt, an MLP run, a net without blocks (VGG) or
    without deletable ones, and K larger than the number of deletable blocks (with
    ``clip_blocks``, K is lowered to that number instead, and a note says so).
    """
    started = time.perf_counter()
    images, draws, seed = check_count(images, "images"), check_count(draws, "draws"), check_count(seed, "seed", 0)
    if blocks is not None:
        check_count(blocks, "blocks (K)")
    device = resolve_device(device)
    trained = load_trained_run(run_dir, images, device, "lesion study")
    model = trained.model
    if not named_blocks(model):
        raise ValueError(f"{trained.model_name} has no residual or plain blocks to delete; the lesion study is for "
                         "the ResNet families and their plain twins")
    with cpu_share(device):
        rows = block_table(model, trained.batches[0][0][:1])
        deletable = [row["name"] for row in rows if row["deletable"]]
        if not deletable:
            raise ValueError(f"{trained.model_name} has no block that can be deleted: every one changes the shape")
        max_blocks = len(deletable) if blocks is None else blocks
        if clip_blocks and max_blocks > len(deletable):
            # A page asks one K of a plain and a residual net; the plain one may have fewer to delete.
            trained.notes.append(f"K lowered from {max_blocks} to {len(deletable)}: {trained.model_name} has "
                                 f"{len(deletable)} blocks that can be deleted")
            max_blocks = len(deletable)
        if max_blocks > len(deletable):
            raise ValueError(f"--blocks {max_blocks} is more than the {len(deletable)} deletable blocks of "
                             f"{trained.model_name}; give at most {len(deletable)}")
        subsets = random_subsets(deletable, max_blocks, draws, seed)
        planned = [()] + [(name,) for name in deletable]
        planned += [subset for drawn in subsets.values() for subset in drawn]
        planned = list(dict.fromkeys(planned))  # each set once, in order
        errors: dict[tuple[str, ...], float] = {}
        if progress:
            progress(0, len(planned))
        for done, subset in enumerate(planned, start=1):
            with deleted_blocks(model, subset):
                errors[subset] = evaluate(model, trained.batches)[1]
            if progress:
                progress(done, len(planned))
    baseline = errors[()]
    for row in rows:
        row["error"] = errors[(row["name"],)] if row["deletable"] else None
    random_deletions = []
    for k, drawn in subsets.items():
        values = [errors[subset] for subset in drawn]
        random_deletions.append({"k": k, "mean_error": statistics.fmean(values),
                                 "std_error": statistics.stdev(values) if len(values) > 1 else 0.0,
                                 "draws": len(values)})
    singles = [errors[(name,)] - baseline for name in deletable]
    return json_safe({
        "run_dir": trained.run_dir, "model": trained.model_name, "label": trained.label, "weights": trained.weights,
        "images": trained.images, "device": device.type, "baseline_error": baseline,
        "blocks": [{"name": row["name"], "deletable": row["deletable"], "error": row["error"], "kind": row["kind"],
                    "shape_in": row["shape_in"], "shape_out": row["shape_out"]} for row in rows],
        "random_deletions": random_deletions, "mean_single_increase": statistics.fmean(singles),
        "evaluations": len(planned), "seed": seed, "seconds": time.perf_counter() - started,
        "notes": trained.notes,
    })


# --- what a study says, in words ------------------------------------------------------------------


def _share_to_chance(study: dict, chance: float) -> float | None:
    room = chance - study["baseline_error"]
    return study["mean_single_increase"] / room if room > 0.01 else None


def lesion_reading(studies: list[dict], classes: int = 10, _: Translate = untranslated) -> list[str]:
    """Sentences on what these studies measured, for the page and the CLI: each run's mean cost of
    one deleted block, as points and as a share of the way from its error to chance; its
    downsampling blocks against its others; and, for a plain and a residual run of the same depth,
    which one a deletion hurts less. Numbers only from ``studies``; words in the page's language ``_``."""
    chance = 1 - 1 / classes
    lines = []
    for study in studies:
        deleted = [block for block in study["blocks"] if block["deletable"] and block["error"] is not None]
        if not deleted:
            continue
        increase = study["mean_single_increase"]
        share = _share_to_chance(study, chance)
        numbers = {"label": study["label"], "weights": shown_weights(study["weights"], _),
                   "baseline": study["baseline_error"], "increase": 100 * increase}
        if share is None:
            line = _("**{label}** ({weights} weights): intact {baseline:.1%}; one block deleted raises the error "
                     "by {increase:+.1f} points on average.").format(**numbers)
        else:
            line = _("**{label}** ({weights} weights): intact {baseline:.1%}; one block deleted raises the error "
                     "by {increase:+.1f} points on average, {share:.0%} of the way from its error to chance "
                     "({chance:.0%}).").format(**numbers, share=share, chance=chance)
        by_kind = {}
        for block in deleted:
            by_kind.setdefault("downsampling" if block["kind"] == "downsampling" else "other", []).append(
                block["error"] - study["baseline_error"])
        if len(by_kind) == 2:
            down, other = (statistics.fmean(by_kind[kind]) for kind in ("downsampling", "other"))
            if down > other:
                line += " " + _("Its downsampling blocks cost {down:+.1f} points, the others {other:+.1f} (more, as "
                                "Veit et al. found).").format(down=100 * down, other=100 * other)
            else:
                line += " " + _("Its downsampling blocks cost {down:+.1f} points, the others {other:+.1f} (not "
                                "more, unlike in Veit et al.).").format(down=100 * down, other=100 * other)
        lines.append(line)
    pairs = {}
    for study in studies:
        spec = resolve(study["model"])
        depth = spec.fixed.get("depth")
        pairs.setdefault((spec.family, depth), {})[bool(spec.fixed.get("residual"))] = study
    for (_family, depth), pair in pairs.items():
        if len(pair) == 2:
            plain, residual = pair[False], pair[True]
            shares = [_share_to_chance(study, chance) for study in (residual, plain)]
            if None in shares:  # a net at chance already: points are all there is
                less = residual["mean_single_increase"] < plain["mean_single_increase"]
                measure = _("{residual:+.1f} against {plain:+.1f} points").format(
                    residual=100 * residual["mean_single_increase"], plain=100 * plain["mean_single_increase"])
            else:
                # A net near chance has few points left to lose: the share of the way to chance compares fairly.
                less = shares[0] < shares[1]
                measure = _("{residual:.0%} against {plain:.0%} of the way to chance").format(
                    residual=shares[0], plain=shares[1])
            names = {"depth": depth, "residual": residual["label"], "plain": plain["label"], "measure": measure}
            if less:
                lines.append(_("At depth {depth}, one deleted block hurts **{residual}** less than **{plain}** "
                               "({measure}): the direction Veit et al. report.").format(**names))
            else:
                lines.append(_("At depth {depth}, one deleted block hurts **{residual}** not less than **{plain}** "
                               "({measure}): not what Veit et al. report.").format(**names))
    return lines


# --- the English a result keeps, in the page's language ----------------------------------------------
# A study's ``weights`` and ``notes`` are kept in English in its result (and its cache, which any
# session reads); a page shows them in its own language through these. A text they do not know
# is shown as it is.


def _shown_state(state: str, _: Translate) -> str:
    names = {"queued": _("queued"), "running": _("running"), "paused": _("paused"), "completed": _("completed"),
             "stopped": _("stopped"), "diverged": _("diverged"), "failed": _("failed"),
             "interrupted": _("interrupted")}
    return names.get(state, state)


def _shown_at(at: str, _: Translate) -> str:
    if at == "its last checkpoint":
        return _("its last checkpoint")
    if match := re.fullmatch(r"step (\d+) of (\d+)", at):
        return _("step {saved} of {total}").format(saved=match[1], total=match[2])
    if match := re.fullmatch(r"step (\d+)", at):
        return _("step {saved}").format(saved=match[1])
    return at


def shown_weights(weights: str, _: Translate = untranslated) -> str:
    """``weights_description``'s text in the page's language ``_``."""
    if weights == "final":
        return _("final")
    if match := re.fullmatch(r"final \(step (\d+)\)", weights):
        return _("final (step {total})").format(total=match[1])
    if match := re.fullmatch(r"latest checkpoint at (.+) \(still training\)", weights):
        return _("latest checkpoint at {at} (still training)").format(at=_shown_at(match[1], _))
    if match := re.fullmatch(r"last saved at (.+) \(run (\w+)\)", weights):
        return _("last saved at {at} (run {state})").format(at=_shown_at(match[1], _),
                                                             state=_shown_state(match[2], _))
    return weights


def shown_note(note: str, _: Translate = untranslated) -> str:
    """A note of a study's or a slice's result in the page's language ``_``."""
    if match := re.fullmatch(r"asked for ([\d,]+) images; the run's test set has ([\d,]+), all used", note):
        return _("asked for {asked} images; the run's test set has {available}, all used").format(
            asked=match[1], available=match[2])
    if match := re.fullmatch(r"K lowered from (\d+) to (\d+): (\S+) has (\d+) blocks that can be deleted", note):
        return _("K lowered from {asked} to {deletable}: {model} has {deletable} blocks that can be deleted").format(
            asked=match[1], deletable=match[2], model=match[3])
    return note
