"""Lesion study and loss landscape of the Fig. 6 preset's depth-20 pair: how long, and what they show.

    python bench/lesion_landscape.py [--seeds 0,1,2] [--device cpu] [--images 1000]
    python bench/lesion_landscape.py --render bench/results/lesion-landscape-cpu-DATE.json

(``--render`` writes the summary and the text again from a recorded result, without measuring.)

Per seed, cifar-plain20 and cifar-resnet20 are trained with the Train page's CPU schedule
(``PRESETS["fig6"].configs("cpu", seed=s)``, those two configs only) by
``explorer.train.trainer.train`` into temporary run folders, one after the other. The one change:
the test set has 1,000 images instead of the preset's 500, so that the slices can use 1,000 (the
training images are drawn from their own stream of the seed and stay the same). Then, each timed:

- the lesion study of each net (every deletable block, then k = 1..7 random blocks, 5 draws;
  plain-20 has 7 deletable blocks, ResNet-20 9) on the first ``--images`` test images;
- a 1-D slice (41 points) and a 2-D slice (15 x 15) of each at span 1, with direction seed = the
  seed, the same directions for both nets (explorer/analysis/landscape.py).

What is checked on each seed: whether the ResNet's single-block deletions raise its error less than
the plain net's (mean increase over its own baseline, over its deletable blocks, in points and as a
share of the way from its baseline to chance, since the plain net starts nearer chance), whether
its downsampling blocks hurt more than its identity blocks (as Veit et al. found), and whether its
surface is smoother by the landscape module's non-convexity (the share of the second differences'
total size that is negative: 0 for a convex slice, about 0.5 for noise; a difference under 0.05
counts as none) and by its count of strict local minima. The goals (issue 14): the pair's lesion study within 30 s, each slice of the pair
within 60 s, on 2 CPU cores. The 1-minute load average is recorded before and after.
"""

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import common
from explorer.analysis.tasks import TaskBoard
from explorer.data.shapes import SHAPE_CLASSES
from explorer.device import environment as device_environment
from explorer.device import resolve_device
from explorer.train.presets import PRESETS
from explorer.train.store import Run
from explorer.train.execution import LocalBackend
from explorer.train.trainer import train

PAIR = ("cifar-plain20", "cifar-resnet20")
TEST_IMAGES = 1000
LESION_BLOCKS, LESION_DRAWS = 7, 5
POINTS_1D, POINTS_2D, SPAN = 41, 15, 1.0
GOALS = {"lesion": 30.0, "slice_1d": 60.0, "slice_2d": 60.0}  # seconds for the pair
CHANCE_ERROR = 1 - 1 / len(SHAPE_CLASSES)  # the preset's CPU data set is shapes-easy
CONVEX_BELOW = 0.05  # non-convexity below this is a convex slice up to noise


def train_pair(folder: Path, seed: int) -> dict:
    configs = [config for config in PRESETS["fig6"].configs("cpu", seed=seed) if config.model.name in PAIR]
    runs = {}
    for config in configs:
        assert config.data.dataset == "shapes-easy", "CHANCE_ERROR assumes the shapes classes"
        config = config.replace(data=dataclasses.replace(config.data, test_size=TEST_IMAGES))
        started = time.perf_counter()
        result = train(config, Run.create(folder / config.model.name, config.to_json()))
        assert result.state == "completed", result.message
        runs[config.model.name] = {"run_dir": result.run_dir, "train_seconds": time.perf_counter() - started,
                                   "train_error": result.train_error, "test_error": result.test_error}
    return runs


def measure_seed(seed: int, device: str, images: int, points_2d: int) -> dict:
    """Each analysis of the pair as the pages run it: both nets at once through a TaskBoard on the
    local backend (two worker processes, one thread each), timed from the request to the last answer."""
    with tempfile.TemporaryDirectory() as folder:
        runs = train_pair(Path(folder), seed)
        board = TaskBoard(LocalBackend(), max_concurrent=len(PAIR))
        asked = {
            "lesion": ("lesion", {"blocks": LESION_BLOCKS, "images": images, "draws": LESION_DRAWS, "seed": seed,
                                  "device": device}),
            "slice_1d": ("landscape", {"points": POINTS_1D, "span": SPAN, "images": images, "dims": 1, "seed": seed,
                                       "device": device, "max_seconds": None}),
            "slice_2d": ("landscape", {"points": points_2d, "span": SPAN, "images": images, "dims": 2, "seed": seed,
                                       "device": device, "max_seconds": None}),
        }
        out = {"seed": seed, "models": {name: {key: run[key] for key in ("train_seconds", "train_error", "test_error")}
                                        for name, run in runs.items()}, "pair_wall_seconds": {}}
        for part, (kind, options) in asked.items():
            started = time.perf_counter()
            tasks = {name: board.request(kind, run["run_dir"], options) for name, run in runs.items()}
            for name, task in tasks.items():
                task.ended.wait()
                assert task.state == "done", task.message
            out["pair_wall_seconds"][part] = time.perf_counter() - started
            keep = (("baseline_error", "blocks", "random_deletions", "mean_single_increase", "evaluations", "seconds",
                     "images", "weights") if kind == "lesion" else
                    ("axis", "loss", "centre_loss", "smoothness", "seconds", "estimate_seconds", "images", "points"))
            for name, task in tasks.items():
                out["models"][name][part] = {key: task.result[key] for key in keep}
            print(f"seed {seed} {part}: {out['pair_wall_seconds'][part]:.1f} s for the pair", flush=True)
    return out


def analyse_seed(result: dict) -> dict:
    """What one seed shows: times for the pair, lesion numbers beside chance, the claims checked."""
    models = result["models"]
    pair_seconds = result.get("pair_wall_seconds") or {part: sum(models[name][part]["seconds"] for name in PAIR)
                                                       for part in GOALS}
    lesion = {}
    for name in PAIR:
        study = models[name]["lesion"]
        base = study["baseline_error"]
        increases = {block["name"]: block["error"] - base for block in study["blocks"] if block["deletable"]}
        by_kind = {}
        for block in study["blocks"]:
            if block["deletable"]:
                by_kind.setdefault(block["kind"], []).append(increases[block["name"]])
        lesion[name] = {
            "mean_single_increase": study["mean_single_increase"],
            # The plain net sits nearer chance, so its increases are capped lower: also as a share of the way.
            "share_of_way_to_chance": study["mean_single_increase"] / (CHANCE_ERROR - base) if base < CHANCE_ERROR
            else None,
            "mean_increase_by_kind": {kind: statistics.fmean(values) for kind, values in by_kind.items()},
        }
    plain, residual = (models[name] for name in PAIR)
    nonconvex = {dims: [models[name][dims]["smoothness"]["nonconvexity"] for name in PAIR]
                 for dims in ("slice_1d", "slice_2d")}
    claims = {
        "ResNet-20's single deletions raise its error less than plain-20's (points)":
            residual["lesion"]["mean_single_increase"] < plain["lesion"]["mean_single_increase"],
        "... and less as a share of the way from its baseline to chance":
            _less(lesion["cifar-resnet20"]["share_of_way_to_chance"], lesion["cifar-plain20"]["share_of_way_to_chance"]),
        "ResNet-20's downsampling blocks hurt more than its identity blocks (Veit et al.)":
            _less(lesion["cifar-resnet20"]["mean_increase_by_kind"].get("identity"),
                  lesion["cifar-resnet20"]["mean_increase_by_kind"].get("downsampling")),
        "plain-20's 2-D slice is clearly non-convex (non-convexity above 0.05)":
            (nonconvex["slice_2d"][0] or 0) > CONVEX_BELOW,
        "ResNet-20's 2-D slice is clearly smoother (non-convexity lower by more than 0.05)":
            None not in nonconvex["slice_2d"] and nonconvex["slice_2d"][1] < nonconvex["slice_2d"][0] - CONVEX_BELOW,
        "ResNet-20's 2-D slice has fewer strict local minima":
            residual["slice_2d"]["smoothness"]["local_minima"] < plain["slice_2d"]["smoothness"]["local_minima"],
    }
    return {"pair_seconds": pair_seconds, "lesion": lesion, "claims": claims}


def _less(left, right) -> bool:
    return left is not None and right is not None and left < right


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(payload: dict, environment: dict) -> tuple[dict, list[str]]:
    """The summary and the markdown of a recorded payload (measured now, or read back with --render)."""
    results, images = payload["runs"], payload["images"]
    analyses = [analyse_seed(result) for result in results]
    load_before, load_after = payload["load_average_before"][0], payload["load_average_after"][0]
    grid = payload.get("points_2d", POINTS_2D)
    schedule = PRESETS["fig6"].cpu
    lines = ["# Lesion study and loss landscape of the depth-20 pair (Fig. 6 preset, CPU schedule)", "",
             f"Run on {environment['device']}; 1-minute load average {load_before:.2f} before, {load_after:.2f} after "
             "(this benchmark alone keeps it near 2; more means other work shared the cores). Each seed: plain-20 and "
             f"ResNet-20 trained with the Train page's CPU schedule ({schedule.steps} steps, batch "
             f"{schedule.batch_size}, lr {schedule.lr:g}, {schedule.dataset} at {schedule.image_size}x"
             f"{schedule.image_size}, {'with' if schedule.augment else 'without'} augmentation, "
             f"{schedule.train_size:,} training images), one after the other, test set raised to {TEST_IMAGES:,} "
             f"images; lesion study with K = {LESION_BLOCKS}, {LESION_DRAWS} draws; slices at span {SPAN:g}, direction "
             f"seed = the seed, on {images:,} test images. Each analysis of the pair runs as the pages run it: both "
             "nets at once, as jobs in two worker processes with one thread each (explorer/analysis/tasks.py); times "
             "are wall seconds from the request to the last answer, loading included.", "",
             "## Time (seconds for both nets)", "",
             f"| seed | lesion study | 1-D slice ({POINTS_1D}) | 2-D slice ({grid}x{grid}) | per net in its worker: "
             "lesion, 1-D, 2-D (plain / ResNet) |",
             "|---|---|---|---|---|"]
    for result, analysis in zip(results, analyses):
        models = result["models"]
        per_net = " / ".join(", ".join(f"{models[name][part]['seconds']:.1f}" for part in GOALS) for name in PAIR)
        pair = analysis["pair_seconds"]
        lines.append(f"| {result['seed']} | {pair['lesion']:.1f} | {pair['slice_1d']:.1f} | {pair['slice_2d']:.1f} | "
                     f"{per_net} |")
    met = {part: sum(a["pair_seconds"][part] <= goal for a in analyses) for part, goal in GOALS.items()}
    lines += ["", "Goals for the pair: " + "; ".join(
        f"{part.replace('_', ' ').replace('1d', '1-D').replace('2d', '2-D')} within {goal:.0f} s: met on "
        f"{met[part]} of {len(results)} seeds" for part, goal in GOALS.items()) + ".", "",
        "## Lesion study", "",
        f"Chance is {CHANCE_ERROR:.0%} error ({len(SHAPE_CLASSES)} classes). Share of the way to chance: the mean "
        "single-deletion increase divided by (chance - baseline).", "",
        "| seed | net | train error | baseline error (test) | mean increase, single deletions | share of the way to "
        "chance | mean increase by kind | k = 1..7 random deletions: mean error |", "|---|---|---|---|---|---|---|---|"]
    for result, analysis in zip(results, analyses):
        for name in PAIR:
            model, numbers = result["models"][name], analysis["lesion"][name]
            study = model["lesion"]
            kinds = ", ".join(f"{kind} {value * 100:+.1f} pt" for kind, value in numbers["mean_increase_by_kind"].items())
            lines.append(
                f"| {result['seed']} | {name} | {_pct(model['train_error'])} | {_pct(study['baseline_error'])} | "
                f"{study['mean_single_increase'] * 100:+.1f} pt | {_pct(numbers['share_of_way_to_chance'])} | {kinds} | "
                + ", ".join(_pct(row["mean_error"]) for row in study["random_deletions"]) + " |")
    lines += ["", "## Loss landscape", "",
              "Non-convexity (explorer/analysis/landscape.py): the share of the second differences' total size that "
              "is negative; 0 is convex along every axis, about 0.5 is noise. Minima: strict interior local minima.",
              "", "| seed | net | centre loss | 1-D non-convexity | 1-D minima | 2-D non-convexity | 2-D minima | "
              "2-D loss range |", "|---|---|---|---|---|---|---|---|"]
    for result in results:
        for name in PAIR:
            one, two = result["models"][name]["slice_1d"], result["models"][name]["slice_2d"]
            finite = [value for row in two["loss"] for value in row if value is not None]
            lines.append(f"| {result['seed']} | {name} | {_num(one['centre_loss'])} | "
                         f"{_num(one['smoothness']['nonconvexity'])} | {one['smoothness']['local_minima']} | "
                         f"{_num(two['smoothness']['nonconvexity'])} | {two['smoothness']['local_minima']} | "
                         f"{min(finite):.2f} - {max(finite):.2f} |")
    claims = {claim: sum(bool(a["claims"][claim]) for a in analyses) for claim in analyses[0]["claims"]}
    lines += ["", "## What the measurements show", ""]
    lines += [f"- {claim}: on {count} of {len(results)} seeds" for claim, count in claims.items()]
    increases = {name: [a["lesion"][name]["mean_single_increase"] for a in analyses] for name in PAIR}
    lines += ["", "Mean single-deletion increase, median over seeds: " + ", ".join(
        f"{name} {statistics.median(values) * 100:+.1f} pt" for name, values in increases.items()) + ".", "",
        verdict(claims, len(results), all(result["models"][name][dims]["smoothness"]["local_minima"] == 1
                                          for result in results for name in PAIR for dims in ("slice_1d", "slice_2d")),
                statistics.median(increases["cifar-resnet20"]))]
    summary = {"claims_held_on_seeds": claims, "goals_met_on_seeds": met, "goals_seconds": GOALS,
               "pair_seconds": [a["pair_seconds"] for a in analyses], "lesion": [a["lesion"] for a in analyses],
               "mean_single_increase": increases}
    return summary, lines


def verdict(claims: dict, seeds: int, single_minimum: bool, resnet_increase: float) -> str:
    """Plain words on whether the short CPU runs show the papers' effects."""
    less, share, downsampling, plain_chaotic, smoother, minima = claims.values()
    said = []
    if less == seeds and share == seeds:
        said.append("Veit et al.'s comparison holds on every seed: deleting one block hurts ResNet-20 less than "
                    "plain-20, in points and as a share of the way to chance; a plain-20 deletion sends the net "
                    "most of the way to chance.")
    else:
        said.append(f"Veit et al.'s comparison is a tendency here: single deletions hurt ResNet-20 less than plain-20 "
                    f"on {less} of {seeds} seeds in points, {share} of {seeds} as a share of the way to chance.")
    said.append(f"But after the {PRESETS['fig6'].cpu.steps} steps of the CPU schedule a ResNet-20 deletion still "
                f"costs {100 * resnet_increase:.0f} points (median over seeds), not the small change Veit et al. "
                "measured on fully trained nets" + (
                    "; its downsampling blocks hurt more than its identity blocks on every seed, as in the paper."
                    if downsampling == seeds else
                    ", and its downsampling blocks do not stand out as they do in the paper: they hurt more than its "
                    f"identity blocks on {downsampling} of {seeds} seeds (the table gives the means by kind)."))
    if plain_chaotic == 0 and smoother == 0:
        said.append("The short CPU runs do not show Li et al.'s landscape effect: along these slices both nets' "
                    "surfaces are convex bowls (non-convexity near 0" + (", one local minimum each" if single_minimum
                                                                         else "") + "), so neither is smoother "
                    "by this measure. Li et al. too found the depth-20 net without shortcuts benign; the chaos they "
                    "show needs depth 56 or 110 (and full training).")
    else:
        said.append(f"Li et al.'s landscape effect shows on {smoother} of {seeds} seeds (plain-20 clearly non-convex "
                    f"on {plain_chaotic}, fewer local minima for ResNet-20 on {minima}).")
    return " ".join(said)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=TEST_IMAGES)
    parser.add_argument("--points-2d", type=int, default=POINTS_2D, help="points per axis of the 2-D slice")
    parser.add_argument("--render", metavar="JSON", help="write the summary and markdown again from a recorded "
                                                         "result, without measuring")
    args = parser.parse_args()
    if args.render:
        recorded = json.loads(Path(args.render).read_text())
        payload = {key: value for key, value in recorded.items() if key not in ("date", "environment", "summary")}
        device, environment = resolve_device(recorded["environment"]["device_type"]), recorded["environment"]
    else:
        device = resolve_device(args.device)
        seeds = [int(seed) for seed in args.seeds.split(",")]
        load_before = os.getloadavg()
        results = [measure_seed(seed, device.type, args.images, args.points_2d) for seed in seeds]
        payload = {"seeds": seeds, "images": args.images, "points_2d": args.points_2d,
                   "load_average_before": load_before, "load_average_after": os.getloadavg(), "runs": results}
        environment = device_environment(device)
    summary, lines = render(payload, environment)
    grid = payload.get("points_2d", POINTS_2D)
    name = "lesion-landscape" if grid == POINTS_2D else f"lesion-landscape-grid{grid}"
    common.record(name, device, {**payload, "summary": summary}, lines)


if __name__ == "__main__":
    main()
