"""The degradation problem on `shapes`: plain-20, plain-56, ResNet-20 and ResNet-56 in one run.

    python bench/degradation.py [--steps 500] [--batch-size 64] [--device auto]

Same data, seed, schedule and steps for all four. Records the curves (training error every
--log-every steps, test error every --eval-every) under bench/results/, and says what they show.
"""

import argparse
import tempfile

import common
from explorer.data import load_dataset
from explorer.device import resolve_device
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.store import Run
from explorer.train.trainer import train

MODELS = ("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=20_000)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--eval-every", type=int, default=100)
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = load_dataset("shapes", train_size=args.train_size, test_size=2_000)
    curves = {}
    for name in MODELS:
        config = RunConfig(model=ModelConfig(name=name), data=DataConfig(dataset="shapes", train_size=args.train_size,
                                                                          test_size=2_000),
                           optim=OptimConfig(steps=args.steps, batch_size=args.batch_size),
                           probes=ProbeConfig(probe_every=0, log_every=args.log_every, eval_every=args.eval_every,
                                              checkpoint_every=10**9),
                           device=args.device)
        with tempfile.TemporaryDirectory() as folder:
            run = Run.create(f"{folder}/run", config.to_json())
            result = train(config, run, dataset=dataset)
            assert result.state == "completed", result.message
            records = run.metrics().records
        curves[name] = {split: [[r["step"], r["error"]] for r in records if r["split"] == split]
                        for split in ("train", "test")}
        curves[name]["images_per_sec"] = result.images_per_sec
        print(name, result.train_error, result.test_error, f"{result.images_per_sec:.0f} img/s", flush=True)

    def final(name, split, last=4):
        points = curves[name][split][-last:]  # the mean of the last points smooths batch noise
        return sum(error for _, error in points) / len(points)

    shows = {
        "plain56_trains_worse_than_plain20": final("cifar-plain56", "train") > final("cifar-plain20", "train"),
        "resnet56_trains_better_than_plain56": final("cifar-resnet56", "train") < final("cifar-plain56", "train"),
        "resnet56_trains_better_than_resnet20": final("cifar-resnet56", "train") < final("cifar-resnet20", "train"),
    }
    lines = ["# The degradation problem on `shapes` (Fig. 1 and Fig. 6, short CPU schedule)",
             f"{args.steps} steps at batch {args.batch_size} ({args.steps * args.batch_size / args.train_size:.1f} epochs "
             f"of {args.train_size:,} images), lr 0.1 divided by 10 at 50% and 75%, seed 0, one run each.", "",
             "| model | train error (last 4 logs) | final test error | images/s |", "|---|---:|---:|---:|"]
    for name in MODELS:
        lines.append(f"| {name} | {final(name, 'train'):.1%} | {curves[name]['test'][-1][1]:.1%} | "
                     f"{curves[name]['images_per_sec']:.0f} |")
    lines += ["", "What this run shows:"] + [f"- {key.replace('_', ' ')}: {'yes' if value else 'no'}"
                                            for key, value in shows.items()]
    lines += ["", "The curves themselves are in the .json file (step, error) per model and split."]
    common.record("degradation-shapes", device, {"config": vars(args), "curves": curves, "shows": shows}, lines)


if __name__ == "__main__":
    main()
