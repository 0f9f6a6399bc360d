"""ResNet-20 on real CIFAR-10 images: the verification subset in ../shared (never copied here).

    python bench/cifar_subset.py [--epochs 20] [--device auto] [--npz PATH]

Trains with the paper's recipe (schedule compressed to --epochs) on the 8,068 training images and
reports accuracy on the 1,017 test images.
"""

import argparse
import tempfile

import common
from explorer.data.folder import load_npz_subset
from explorer.device import resolve_device
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.store import Run
from explorer.train.trainer import train

DEFAULT_NPZ = common.ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar10-subset.npz"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=float, default=20)
    parser.add_argument("--model", default="cifar-resnet20")
    parser.add_argument("--npz", default=str(DEFAULT_NPZ))
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = load_npz_subset(args.npz)
    config = RunConfig(model=ModelConfig(name=args.model), data=DataConfig(dataset="cifar10-subset"),
                       optim=OptimConfig(epochs=args.epochs, batch_size=128),
                       probes=ProbeConfig(probe_every=0, log_every=20, eval_every=63, checkpoint_every=10**9),
                       device=args.device)
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create(f"{folder}/run", config.to_json())
        result = train(config, run, dataset=dataset)
        assert result.state == "completed", result.message
        tests = [[r["step"], r["error"]] for r in run.metrics().records if r["split"] == "test"]
    accuracy = 1 - result.test_error
    lines = [f"# {args.model} on the real CIFAR-10 subset",
             f"{len(dataset.x_train):,} training and {len(dataset.x_test):,} test images of real CIFAR-10; "
             f"{args.epochs:g} epochs at batch 128, lr 0.1 divided by 10 at 50% and 75%, pad-4 crop and flip.", "",
             f"- test accuracy: **{accuracy:.1%}** (test error {result.test_error:.1%}); final training error "
             f"{result.train_error:.1%}",
             f"- training speed: {result.images_per_sec:.0f} images/s",
             "- for scale: the paper's ResNet-20 reaches 91.25% accuracy on the full 50,000 images after 64k "
             "iterations; this subset is a sixth of the data and a fraction of the schedule."]
    common.record(f"cifar-subset-{args.model}", device, {"epochs": args.epochs, "test_accuracy": accuracy,
                                                        "train_error": result.train_error, "test_curve": tests,
                                                        "images_per_sec": result.images_per_sec}, lines)


if __name__ == "__main__":
    main()
