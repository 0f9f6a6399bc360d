"""Training images/s: our trainer against a straightforward reference loop, side by side.

    python bench/train_throughput.py [--device auto] [--steps 30] [--warmup 5]

The reference is what a tutorial writes: a torch DataLoader over the images with per-image
torchvision transforms (pad-4 random crop, flip, ToTensor, Normalize), fp32, NCHW, the same model,
optimiser and batch size. Ours: the project's trainer (data on the device as uint8, batch
augmentation there; bf16 and channels_last on CUDA), without probes and with probes every 10
steps (their overhead). Both are timed over the same number of steps after the same warm-up.
"""

import argparse
import statistics
import tempfile
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset

from explorer.data import load_dataset
from explorer.device import resolve_device, synchronize
from explorer.models import build_model
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.store import Run
from explorer.train.trainer import train

BATCH = 128


class ImageArrayDataset(Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def reference_images_per_sec(model_name, dataset, device, warmup, steps, workers):
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(dataset.mean, dataset.std)])
    loader = DataLoader(ImageArrayDataset(dataset.x_train, dataset.y_train, transform), batch_size=BATCH,
                        shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0)
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=dataset.num_classes).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    batches = iter(loader)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, labels = next(batches)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return steps * BATCH / (time.perf_counter() - start)


def ours_images_per_sec(model_name, dataset, device, warmup, steps, probe_every):
    config = RunConfig(model=ModelConfig(name=model_name), data=DataConfig(dataset="shapes"),
                       optim=OptimConfig(steps=warmup + steps, batch_size=BATCH),
                       probes=ProbeConfig(probe_every=probe_every, log_every=warmup, eval_every=10**9,
                                          checkpoint_every=10**9),
                       device=str(device.type))
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create(f"{folder}/run", config.to_json())
        result = train(config, run, dataset=dataset)
        assert result.state == "completed", result.message
        times = {m["step"]: m["time"] for m in run.metrics().records if m["split"] == "train"}
    # "time" is training time so far; the warm-up steps are left out.
    return steps * BATCH / (times[warmup + steps] - times[warmup])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats; the median is reported")
    parser.add_argument("--models", default="cifar-resnet20,cifar-resnet56")
    args = parser.parse_args()
    if args.steps % args.warmup:
        parser.error("--steps must be a multiple of --warmup (the logging interval)")
    device = resolve_device(args.device)
    dataset = load_dataset("shapes", train_size=10_000, test_size=1_000)
    rows = []
    for model_name in args.models.split(","):
        samples = {"reference, 0 workers": [], "reference, 2 workers": [], "ours": [], "ours, probes every 10": []}
        measure = {
            "reference, 0 workers": lambda: reference_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 0),
            "reference, 2 workers": lambda: reference_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 2),
            "ours": lambda: ours_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 0),
            "ours, probes every 10": lambda: ours_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 10),
        }
        order = list(measure)
        for repeat in range(args.repeats):
            # Alternate and rotate, so drift in the machine does not always hit the same variant.
            for name in (order if repeat % 2 == 0 else order[::-1]):
                samples[name].append(measure[name]())
        medians = {name: statistics.median(values) for name, values in samples.items()}
        best_reference = max(medians["reference, 0 workers"], medians["reference, 2 workers"])
        rows.append({"model": model_name, "images_per_sec": medians, "samples": samples,
                     "speedup_vs_best_reference": medians["ours"] / best_reference,
                     "probe_overhead": 1 - medians["ours, probes every 10"] / medians["ours"]})
    lines = ["# Training throughput: our trainer against a reference loop",
             f"Batch {BATCH}, {args.steps} timed steps after {args.warmup} warm-up steps, median of {args.repeats} "
             "repeats in alternating order, `shapes` data (10,000 images).", "",
             "| model | reference, 0 workers | reference, 2 workers | ours | ours, probes every 10 | ours / best reference | probe overhead |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m = row["images_per_sec"]
        lines.append(f"| {row['model']} | {m['reference, 0 workers']:.0f} | {m['reference, 2 workers']:.0f} | "
                     f"{m['ours']:.0f} | {m['ours, probes every 10']:.0f} | {row['speedup_vs_best_reference']:.2f}x | "
                     f"{row['probe_overhead']:.1%} |")
    lines.append("")
    lines.append("Images per second of training (forward, backward, SGD step); evaluation is not included.")
    name = "train-throughput" if args.models == parser.get_default("models") else \
        "train-throughput-" + args.models.replace(",", "-")
    common.record(name, device, {"batch_size": BATCH, "steps": args.steps, "warmup": args.warmup,
                                               "rows": rows}, lines)


if __name__ == "__main__":
    main()
