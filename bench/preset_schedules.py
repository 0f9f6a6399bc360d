"""Which one-minute CPU schedule makes the presets' claims hold most firmly: candidates tried on a few seeds.

    python bench/preset_schedules.py [--seeds 0-4] [--dataset shapes-easy] [--candidates all] [--models ...]

Each candidate schedule trains the nets (by default ResNet-20 and ResNet-56, the pair whose order
the CPU presets cannot yet claim) on each seed, two at a time in two processes of one thread each,
as two of the app's four slots would. Recorded per candidate: each net's training error (the mean of
the last three logs), how many seeds each claim held on, and the median seconds one net took, so
the four nets of Fig. 6 at the candidate's cost can be estimated against the 60-second budget
(bench/presets.py then measures the chosen schedule as the app runs it).
"""

import argparse
import json
import os
import dataclasses
import multiprocessing
import statistics

import common
from explorer.device import resolve_device
from explorer.train.precision import resolve_precision
from explorer.train.presets import CLAIMS, PRESETS, Schedule

BASE = PRESETS["fig6"].cpu
CANDIDATES = {
    "now: 140 steps, batch 64, 16 px, lr 0.02": {},
    "lr 0.05": {"lr": 0.05},
    "lr 0.01": {"lr": 0.01},
    "batch 32, 250 steps": {"batch_size": 32, "steps": 250},
    "batch 32, 250 steps, lr 0.01": {"batch_size": 32, "steps": 250, "lr": 0.01},
    # Where bf16 is native the same minute holds about twice the steps (bench/results/presets-*-bf16-*):
    "280 steps": {"steps": 280},
    "280 steps, lr 0.05": {"steps": 280, "lr": 0.05},
    "200 steps, batch 96": {"steps": 200, "batch_size": 96},
}
# Not tried: images under 16 pixels (the shapes are drawn at 16 at least); 32 pixels costs 2.7 times
# the time of 16, more than even a bf16 machine has left in the minute.


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--dataset", default="shapes-easy")
    parser.add_argument("--candidates", default="all", help="comma-separated indices into CANDIDATES, or all")
    parser.add_argument("--models", default="cifar-resnet20,cifar-resnet56")
    parser.add_argument("--keep", metavar="FILE.jsonl", help="each candidate's row as it ends; those in it are not run again")
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    names = list(CANDIDATES) if args.candidates == "all" else [list(CANDIDATES)[int(i)] for i in args.candidates.split(",")]
    models = args.models.split(",")
    kept = [json.loads(line) for line in open(args.keep)] if args.keep and os.path.exists(args.keep) else []
    rows = [row for row in kept if row["candidate"] in names]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        for name in names:
            if any(row["candidate"] == name for row in rows):
                continue
            schedule: Schedule = dataclasses.replace(BASE, **CANDIDATES[name])
            preset = dataclasses.replace(PRESETS["fig6"], cpu_models=tuple(models), cpu=schedule)
            jobs = [config for seed in seeds for config in preset.configs("cpu", dataset=args.dataset, seed=seed)]
            results = pool.map(common.train_in_one_thread, jobs)
            by_seed = {}
            for result in results:
                by_seed.setdefault(result["seed"], {})[result["model"]] = result
            counts = {}
            for key, claim in CLAIMS.items():
                if claim["left"] in models and claim["right"] in models:
                    counts[key] = sum(by_seed[seed][claim["left"]][claim["measure"]] < by_seed[seed][claim["right"]][claim["measure"]]
                                      for seed in seeds)
            seconds = {model: statistics.median(r["seconds"] for r in results if r["model"] == model) for model in models}
            rows.append({"candidate": name, "schedule": dataclasses.asdict(schedule), "claims_held_on_seeds": counts,
                         "median_seconds_per_net": seconds,
                         "train_error": {model: [round(by_seed[s][model]["train_error"], 4) for s in seeds]
                                         for model in models}})
            print(rows[-1], flush=True)
            if args.keep:
                with open(args.keep, "a") as keep:
                    keep.write(json.dumps(rows[-1]) + "\n")
    best = max(rows, key=lambda row: row["claims_held_on_seeds"].get("resnet56_ahead_of_resnet20", -1))
    lines = ["# One-minute CPU schedules tried for the presets", "",
             f"Data: {args.dataset}; nets: {', '.join(models)}; seeds {args.seeds}; two nets at a time, one thread "
             "each. Training error: the mean of the last three logs. Seconds per net: one run's wall time in its "
             "process, the median over seeds; on a machine other work shares they are long, so compare them within "
             "this table only (bench/presets.py times the chosen schedule as the app runs it).", "",
             "| candidate | " + " | ".join(f"{m} training error per seed" for m in models) + " | claims held | s per net |",
             "|---|" + "---|" * len(models) + "---|---|"]
    for row in rows:
        errors = " | ".join(", ".join(f"{e:.0%}" for e in row["train_error"][m]) for m in models)
        claims = "; ".join(f"{CLAIMS[k]['text'].split(' (')[0]}: {v} of {len(seeds)}" for k, v in row["claims_held_on_seeds"].items())
        per_net = ", ".join(f"{m.removeprefix('cifar-')} {s:.0f}" for m, s in row["median_seconds_per_net"].items())
        lines.append(f"| {row['candidate']} | {errors} | {claims} | {per_net} |")
    if "resnet56_ahead_of_resnet20" in best["claims_held_on_seeds"]:
        most = best["claims_held_on_seeds"]["resnet56_ahead_of_resnet20"]
        lines += ["", f"Most seeds with ResNet-56 ahead of ResNet-20: {best['candidate']}, {most} of {len(seeds)}. "
                      "A claim the page makes must hold on 9 of 10 seeds: "
                      + ("this candidate could, and bench/presets.py must confirm it on ten seeds as the app runs them."
                         if most >= 0.9 * len(seeds) else
                         "no schedule tried gets there, so the preset keeps saying it cannot show this.")]
    label = "shapes" if args.dataset.startswith("shapes") else "real-images"
    device = resolve_device("cpu")
    precision, reason = resolve_precision("auto", device)
    lines[1:1] = ["", f"Precision: {precision}, as `auto` chooses on this machine: {reason}."]
    common.record(f"preset-schedules-{label}", device,
                  {"dataset": args.dataset, "seeds": seeds, "models": models, "precision": precision, "rows": rows},
                  lines, variant=common.machine_variant(device))


if __name__ == "__main__":
    main()
