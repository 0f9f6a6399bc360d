"""The Train page's presets on this machine, run as the app runs them: what each shows, on how many seeds, and how long.

    python bench/presets.py [--presets fig1,fig6] [--seeds 0-9] [--repeat-seed 0] [--device auto] [--dataset NAME]

Each preset's nets are submitted together to a JobManager with the app's backend (worker
processes) and slots, and the preset's schedule for the device. Recorded per preset and seed: the
wall time from submission to the last run's end, each net's training error (the mean of the last
three logs) and test error at the end, and the mean std of its layer responses on the saved
weights (the final probe). Each claim a preset's text makes is checked on every seed; the
presets' pages read the counts from this record.

Fig. 7's preset trains the same nets on the same schedule as Fig. 6 and only probes more often, so
its claim (smaller responses in the ResNets) is checked on the Fig. 6 runs. ``--repeat-seed`` runs
one seed of each preset a second time and records whether the curves are the same.

``--dataset`` trains on other data than the schedule's: real images (``cifar10``, or
``folder:PATH``, such as the CIFAR-10 subset of ../shared exported as a folder) are recorded apart,
as ``presets-real-images``, and the pages quote that table when the presets train on real images.
A folder is decoded once, timed, into a data cache of the bench's own before seed 0 (what the first
preset on a machine adds), and every run then reads the decoded arrays, as the app's runs do.
With ``--presets fig6`` alone, Fig. 1's claim is also checked on the Fig. 6 runs (the same two
plain nets, seeds and schedule), without Fig. 1's own wall time.
"""

import argparse
import os
import statistics
import tempfile
import time

import common
from explorer.analysis.runs import read_run, response_summary
from explorer.data import load_dataset
from explorer.data.base import DATA_DIR_ENV, FOLDER_PREFIX
from explorer.device import resolve_device
from explorer.train.jobs import JobManager
from explorer.train.precision import resolve_precision
from explorer.train.presets import CLAIMS, PRESETS

APP_SLOTS = 4  # the app's default RESNET_EXPLORER_MAX_JOBS


def final_numbers(run_dir: str) -> dict:
    record = read_run(run_dir)
    train = [m["error"] for m in record.metrics if m["split"] == "train"][-3:]  # three logs smooth batch noise
    test = [m["error"] for m in record.metrics if m["split"] == "test"]
    responses = response_summary([record])  # the last probe: the saved weights
    return {"train_error": sum(train) / len(train), "test_error": test[-1],
            "mean_response_std": responses[0]["mean_std"] if responses else None,
            "train_curve": [round(m["error"], 6) for m in record.metrics if m["split"] == "train"]}


def run_preset(key: str, device_type: str, seed: int, dataset: str | None = None) -> dict:
    preset = PRESETS[key]
    with tempfile.TemporaryDirectory() as folder:
        manager = JobManager(folder, max_concurrent=APP_SLOTS)
        start = time.perf_counter()
        jobs = manager.submit_group(preset.configs(device_type, dataset=dataset, seed=seed), group=f"{key}-{seed}")
        for job in jobs:
            manager.wait(job.run_dir)
            assert job.result.state == "completed", job.result.message
        seconds = time.perf_counter() - start
        models = {job.config.model.name: final_numbers(job.run_dir) for job in jobs}
        manager.shutdown()
    return {"seed": seed, "seconds": seconds, "models": models}


def held(claim: dict, models: dict) -> bool | None:
    """Whether ``claim`` holds in one seed's numbers; None when the preset lacks its nets."""
    left, right = models.get(claim["left"]), models.get(claim["right"])
    if left is None or right is None or left[claim["measure"]] is None or right[claim["measure"]] is None:
        return None
    return left[claim["measure"]] < right[claim["measure"]]


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def retime(args) -> None:
    import json
    from pathlib import Path

    path = Path(args.retime)
    record = json.loads(path.read_text())
    device = resolve_device(args.device)
    seeds = parse_seeds(args.seeds)
    dataset = record.get("dataset")
    for seed in seeds:
        again = run_preset("fig6", device.type, seed, None if dataset and dataset.startswith("shapes") else dataset)
        kept = next(run for run in record["runs"]["fig6"] if run["seed"] == seed)
        for name, numbers in again["models"].items():
            assert abs(numbers["train_error"] - kept["models"][name]["train_error"]) < 1e-9, (seed, name)
        print(f"seed {seed}: {kept['seconds']:.0f} s before, {again['seconds']:.0f} s now, the same errors", flush=True)
        kept["seconds"] = again["seconds"]
    for key in record["summary"]:
        if key in ("fig6", "fig7"):
            record["summary"][key]["seconds"] = [run["seconds"] for run in record["runs"]["fig6"]]
    record["retimed_seeds"] = sorted(set(record.get("retimed_seeds", [])) | set(seeds))
    path.write_text(json.dumps(record, indent=1) + "\n")
    markdown = path.with_suffix(".md")
    walls = record["summary"]["fig6"]["seconds"]
    lines = markdown.read_text().splitlines()
    lines = [(f"Wall time, submission to the last run's end: median {statistics.median(walls):.0f} s, "
              f"{min(walls):.0f}-{max(walls):.0f} s over seeds {record['seeds'][0]}-{record['seeds'][-1]} (seeds "
              f"{', '.join(map(str, record['retimed_seeds']))} timed again: their first runs overlapped other work on "
              "the cores; the same errors both times)."
              if line.startswith("Wall time, submission") else line) for line in lines]
    markdown.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="fig1,fig6")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--repeat-seed", type=int, default=0, help="run this seed twice (-1: none)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default=None, help="instead of the schedule's data (real images: see above)")
    parser.add_argument("--dataset-note", default="", help="what the data is, for the record (e.g. a subset)")
    parser.add_argument("--retime", metavar="RECORD.json",
                        help="time --seeds again for this record of today (their runs overlapped other work): the "
                             "curves must come out the same; their seconds replace the record's, which says so")
    args = parser.parse_args()
    if args.retime:
        return retime(args)
    device = resolve_device(args.device)
    seeds = parse_seeds(args.seeds)
    keys = args.presets.split(",")
    results, repeats = {}, {}
    precision, precision_reason = resolve_precision("auto", device)
    decode_seconds = None
    if args.dataset and args.dataset.startswith(FOLDER_PREFIX):
        # Before the first JobManager: its worker processes inherit this environment.
        os.environ[DATA_DIR_ENV] = tempfile.mkdtemp(prefix="bench-presets-data-")
        start = time.perf_counter()
        load_dataset(args.dataset, image_size=PRESETS[keys[0]].schedule(device.type).image_size)
        decode_seconds = time.perf_counter() - start
        print(f"{args.dataset} decoded into an empty cache in {decode_seconds:.1f} s", flush=True)
    for key in keys:
        results[key] = []
        for seed in seeds:
            results[key].append(run_preset(key, device.type, seed, args.dataset))
            numbers = {name: round(m["train_error"] * 100, 1) for name, m in results[key][-1]["models"].items()}
            print(key, seed, f"{results[key][-1]['seconds']:.0f} s", numbers, flush=True)
        if args.repeat_seed >= 0:
            again = run_preset(key, device.type, args.repeat_seed, args.dataset)
            first = next(r for r in results[key] if r["seed"] == args.repeat_seed)
            repeats[key] = {"seed": args.repeat_seed, "same_curves": all(
                again["models"][name]["train_curve"] == first["models"][name]["train_curve"] for name in first["models"])}
    if "fig6" in results and "fig7" not in keys:
        results["fig7"] = results["fig6"]  # the same nets and schedule; see the docstring
    reused_for_fig1 = "fig6" in results and "fig1" not in keys
    if reused_for_fig1:
        results["fig1"] = [{**run, "models": {name: numbers for name, numbers in run["models"].items()
                                              if name in PRESETS["fig1"].cpu_models}} for run in results["fig6"]]
    dataset = args.dataset or PRESETS[keys[0]].schedule(device.type).dataset

    schedule = PRESETS[keys[0]].schedule(device.type)
    lines = [f"# The Train page's presets on {device.type.upper()}, run as the app runs them", "",
             f"Each preset's nets train at once through the JobManager (worker processes, {APP_SLOTS} slots, as the "
             "app). Training error: the mean of the last three logs; test error: the last evaluation; response std: "
             "the mean over 3x3 layers of the saved weights (the final probe). Schedule: "
             f"{schedule.steps} steps at batch {schedule.batch_size}, lr {schedule.lr:g}"
             + (f" after {schedule.warmup_steps} warm-up steps at {schedule.warmup_lr:g}" if schedule.warmup_steps else "")
             + f" (divided by 10 at {', '.join(f'{m:.0%}' for m in schedule.lr_milestones)} of the steps), "
             f"{schedule.train_size or 'all'} images of {dataset} at {schedule.image_size}x{schedule.image_size}"
             + (f" ({args.dataset_note})" if args.dataset_note else "") + ".", "",
             f"Precision: {precision}, as `auto` chooses on this machine: {precision_reason}.", ""]
    if decode_seconds is not None:
        lines += [f"The folder's files were decoded once before seed 0, into an empty cache, in {decode_seconds:.1f} s: "
                  "the first preset on a machine takes that much longer. Every run then read the decoded arrays from "
                  "the data cache, as the app's runs do (explorer/data/folder.py).", ""]
    if reused_for_fig1:
        lines += ["Fig. 1's preset trains two of Fig. 6's nets (plain-20 and plain-56) on the same schedule: its claim "
                  "is checked on the Fig. 6 runs, and its wall time (two nets, not four) is not measured here.", ""]
    if "fig7" in results and "fig7" not in keys:
        lines += ["Fig. 7's preset trains the same nets on the same schedule as Fig. 6 (probing every 10 steps, not "
                  "20): its claim is checked on the Fig. 6 runs.", ""]
    summary = {}
    for key, runs in results.items():
        preset = PRESETS[key]
        names = list(runs[0]["models"])
        walls = [r["seconds"] for r in runs] if not (key == "fig1" and reused_for_fig1) else []
        lines += [f"## {preset.title_on(device.type)}", "",
                  (f"Wall time, submission to the last run's end: median {statistics.median(walls):.0f} s, "
                   f"{min(walls):.0f}-{max(walls):.0f} s over seeds {args.seeds}." if walls else
                   "Wall time: not measured (the Fig. 6 runs' numbers)."), "",
                  "| model | training error per seed | median | test error, median | response std, median |",
                  "|---|---|---|---|---|"]
        for name in names:
            train = [r["models"][name]["train_error"] for r in runs]
            test = [r["models"][name]["test_error"] for r in runs]
            stds = [r["models"][name]["mean_response_std"] for r in runs if r["models"][name]["mean_response_std"]]
            lines.append(f"| {name} | {', '.join(f'{e:.0%}' for e in train)} | {statistics.median(train):.1%} | "
                         f"{statistics.median(test):.1%} | {statistics.median(stds):.3f} |" if stds else
                         f"| {name} | {', '.join(f'{e:.0%}' for e in train)} | {statistics.median(train):.1%} | "
                         f"{statistics.median(test):.1%} | - |")
        lines.append("")
        counts = {}
        for claim in preset.claims:
            outcomes = [held(CLAIMS[claim], r["models"]) for r in runs]
            if None in outcomes:
                continue
            counts[claim] = sum(outcomes)
            lines.append(f"- {CLAIMS[claim]['text']}: on {sum(outcomes)} of {len(runs)} seeds")
        if key in repeats:
            lines.append(f"- seed {repeats[key]['seed']} run twice: "
                         f"{'the same' if repeats[key]['same_curves'] else 'different'} training curves")
        summary[key] = {"seconds": walls, "claims_held_on_seeds": counts, "repeat": repeats.get(key)}
        lines.append("")
    for runs in results.values():
        for run in runs:
            for numbers in run["models"].values():
                numbers.pop("train_curve", None)  # compared above; too long to keep
    name = "presets" if dataset.startswith("shapes") else "presets-real-images"
    common.record(name, device, {"seeds": seeds, "dataset": dataset, "dataset_note": args.dataset_note,
                                 "precision": precision, "folder_decode_seconds": decode_seconds, "summary": summary,
                                 "runs": results}, lines, variant=common.machine_variant(device))


if __name__ == "__main__":
    main()
