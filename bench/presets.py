"""The Train page's presets on this machine, run as the app runs them: what each shows, and how long.

    python bench/presets.py [--presets fig1,fig6,fig7] [--seeds 0,1,2] [--device auto]

Each preset's models train together through the JobManager (threads in one process, as on the
Train page), with the preset's schedule for the device. Recorded per preset and seed: the wall
time from submission to the last run's end, and each model's training error (mean of the last
three logs) and test error at the end. The claims the preset texts make are checked on every seed.
"""

import argparse
import statistics
import tempfile
import time

import common
from explorer.analysis.runs import read_run
from explorer.device import resolve_device
from explorer.train.jobs import JobManager
from explorer.train.presets import PRESETS


def final_errors(run_dir: str) -> dict:
    metrics = read_run(run_dir).metrics
    train = [m["error"] for m in metrics if m["split"] == "train"][-3:]  # three logs smooth batch noise
    test = [m["error"] for m in metrics if m["split"] == "test"]
    return {"train_error": sum(train) / len(train), "test_error": test[-1]}


def run_preset(key: str, device_type: str, seed: int) -> dict:
    preset = PRESETS[key]
    with tempfile.TemporaryDirectory() as folder:
        manager = JobManager(folder, max_concurrent=len(preset.models(device_type)))
        start = time.perf_counter()
        jobs = manager.submit_group(preset.configs(device_type, seed=seed), group=f"{key}-{seed}")
        for job in jobs:
            manager.wait(job.run_dir)
            assert job.result.state == "completed", job.result.message
        seconds = time.perf_counter() - start
        models = {job.config.model.name: final_errors(job.run_dir) for job in jobs}
    return {"seconds": seconds, "models": models}


CLAIMS = {  # what the preset texts say a short CPU run shows; checked per seed
    "plain-56 trains worse than plain-20": ("cifar-plain56", ">", "cifar-plain20"),
    "ResNet-56 trains better than plain-56": ("cifar-resnet56", "<", "cifar-plain56"),
    "ResNet-20 trains better than plain-20": ("cifar-resnet20", "<", "cifar-plain20"),
    "ResNet-56 trains better than ResNet-20 (the paper's long-schedule result)":
        ("cifar-resnet56", "<", "cifar-resnet20"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    results = {}
    for key in args.presets.split(","):
        results[key] = [run_preset(key, device.type, seed) for seed in seeds]
        for seed, result in zip(seeds, results[key]):
            errors = {name: round(model["train_error"] * 100, 1) for name, model in result["models"].items()}
            print(key, seed, f"{result['seconds']:.0f} s", errors, flush=True)

    first = PRESETS[next(iter(results))].schedule(device.type)
    lines = [f"# The Train page's presets on {device.type.upper()}, run as the app runs them", "",
             "Each preset's models train at once through the JobManager; training error is the mean of the last "
             "three logs, test error the last evaluation. Schedule: "
             f"{first.steps} steps at batch {first.batch_size}, lr {first.lr:g} (divided by 10 at "
             f"{', '.join(f'{m:.0%}' for m in first.lr_milestones)} of the steps), {first.train_size or 'all'} "
             f"images of {first.dataset} at {first.image_size}x{first.image_size}.", ""]
    summary = {}
    for key, runs in results.items():
        preset = PRESETS[key]
        names = list(runs[0]["models"])
        walls = ", ".join(f"{r['seconds']:.0f} s" for r in runs)
        lines += [f"## {preset.title}", "",
                  f"Wall time, submission to the last run's end: {walls} (seeds {', '.join(map(str, seeds))}).", "",
                  "| model | training error per seed | median | test error per seed |", "|---|---|---|---|"]
        for name in names:
            train = [r["models"][name]["train_error"] for r in runs]
            test = [r["models"][name]["test_error"] for r in runs]
            lines.append(f"| {name} | {', '.join(f'{e:.1%}' for e in train)} | {statistics.median(train):.1%} | "
                         f"{', '.join(f'{e:.1%}' for e in test)} |")
        lines.append("")
        claims = {}
        for claim, (left, relation, right) in CLAIMS.items():
            if left in names and right in names:
                holds = [(r["models"][left]["train_error"] > r["models"][right]["train_error"]) == (relation == ">")
                         for r in runs]
                claims[claim] = sum(holds)
                lines.append(f"- {claim}: on {sum(holds)} of {len(runs)} seeds")
        summary[key] = {"seconds": [r["seconds"] for r in runs], "claims_held_on_seeds": claims}
        lines.append("")
    common.record("presets", device, {"seeds": seeds, "summary": summary, "runs": results}, lines)


if __name__ == "__main__":
    main()
