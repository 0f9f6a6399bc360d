"""Training images/s: our trainer's fp32, bf16 and compiled paths against a straightforward reference loop.

    python bench/train_throughput.py [--device auto] [--steps 30] [--warmup 5] [--cases cifar-resnet20@32,cifar-resnet56@16]

The reference is what a tutorial writes: a torch DataLoader over the images with per-image
torchvision transforms (pad-4 random crop, flip, ToTensor, Normalize), fp32, NCHW, the same model,
optimiser and batch size. Ours: the project's trainer (data on the device as uint8, batch
augmentation there, channels_last), in fp32 without probes and with probes every 10 steps (their
overhead), under bf16 autocast, and compiled with torch.compile (inductor). Each is timed over
the same number of steps after the same warm-up; the compiled path's compile time (its first
steps, less what they would take eagerly) is recorded apart, since every run pays it again.

bf16 is measured whether or not the processor computes it natively (the record says which); where
it is emulated it runs so slowly that it is timed over ``--slow-steps`` only.
"""

import argparse
from pathlib import Path
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
from explorer.train.precision import cpu_bf16_support, native_bf16
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
    transform = T.Compose([T.RandomCrop(dataset.image_size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
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


def ours_images_per_sec(model_name, dataset, device, warmup, steps, probe_every, precision="fp32", compile="off"):
    """(images/s after the warm-up, seconds of the warm-up steps)."""
    config = RunConfig(model=ModelConfig(name=model_name), data=DataConfig(dataset="shapes"),
                       optim=OptimConfig(steps=warmup + steps, batch_size=BATCH),
                       probes=ProbeConfig(probe_every=probe_every, log_every=warmup, eval_every=10**9,
                                          checkpoint_every=10**9),
                       device=str(device.type), precision=precision, compile=compile)
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create(f"{folder}/run", config.to_json())
        result = train(config, run, dataset=dataset)
        assert result.state == "completed", result.message
        environment = run.status()["environment"]
        assert environment["precision"] == precision and environment["compiled"] == (compile == "on"), environment
        times = {m["step"]: m["time"] for m in run.metrics().records if m["split"] == "train"}
    # "time" is training time so far; the warm-up steps are left out.
    return steps * BATCH / (times[warmup + steps] - times[warmup]), times[warmup]


def compiled_in_a_fresh_process(model_name, image_size, device, warmup, steps, cache_dir):
    """(images/s, warm-up seconds) of the compiled path in a new process, as each run's worker is, with
    inductor's on-disk cache in ``cache_dir``: empty the first time (a cold compile), filled after."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, 'bench'); import train_throughput as t; from explorer.data import "
            "load_dataset; from explorer.device import resolve_device; "
            f"d = load_dataset('shapes', train_size=10_000, test_size=1_000, image_size={image_size}); "
            f"print(json.dumps(t.ours_images_per_sec({model_name!r}, d, resolve_device({device.type!r}), {warmup}, "
            f"{steps}, 0, 'fp32', 'on')))")
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir), "TORCHINDUCTOR_FX_GRAPH_CACHE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=common.ROOT, env=environment, capture_output=True,
                         text=True, check=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--slow-steps", type=int, default=5, help="timed steps of an emulated bf16")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats; the median is reported")
    parser.add_argument("--cases", default="cifar-resnet20@32,cifar-resnet56@16", help="model@image size, ...")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()
    if args.steps % args.warmup or args.slow_steps % args.warmup:
        parser.error("--steps and --slow-steps must be multiples of --warmup (the logging interval)")
    device = resolve_device(args.device)
    native = native_bf16(device)
    rows = []
    for case in args.cases.split(","):
        model_name, _, size = case.partition("@")
        dataset = load_dataset("shapes", train_size=10_000, test_size=1_000, image_size=int(size or 32))
        bf16_steps = args.steps if native else args.slow_steps
        measure = {
            "reference, 0 workers": lambda: (reference_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 0), None),
            "reference, 2 workers": lambda: (reference_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 2), None),
            "ours, fp32": lambda: ours_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 0),
            "ours, fp32, probes every 10": lambda: ours_images_per_sec(model_name, dataset, device, args.warmup, args.steps, 10),
            "ours, bf16": lambda: ours_images_per_sec(model_name, dataset, device, args.warmup, bf16_steps, 0, "bf16"),
        }
        if not args.skip_compile:
            cache = Path(tempfile.mkdtemp(prefix="inductor-cache-"))
            measure["ours, fp32, compiled (cold cache)"] = lambda: compiled_in_a_fresh_process(
                model_name, dataset.image_size, device, args.warmup, args.steps, cache)
            measure["ours, fp32, compiled (warm cache)"] = lambda: compiled_in_a_fresh_process(
                model_name, dataset.image_size, device, args.warmup, args.steps, cache)
        samples = {name: [] for name in measure}
        warmups = {name: [] for name in measure}
        order = [name for name in measure if "compiled" not in name]
        order += [name for name in measure if "compiled" in name]  # cold before warm, whatever the repeat's order
        for repeat in range(args.repeats):
            # Alternate and rotate, so drift in the machine does not always hit the same variant.
            plain = [name for name in order if "compiled" not in name]
            for name in (plain if repeat % 2 == 0 else plain[::-1]) + [name for name in order if "compiled" in name]:
                if "compiled" in name and repeat > 0:
                    continue  # once: its compile takes minutes on 2 cores, and its speed varies less than that
                rate, warmup_seconds = measure[name]()
                samples[name].append(rate)
                warmups[name].append(warmup_seconds)
                print(case, name, f"{rate:.0f} images/s", flush=True)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        reference = medians["reference, 0 workers"]
        best_reference = max(reference, medians["reference, 2 workers"])
        row = {"model": model_name, "image_size": dataset.image_size, "images_per_sec": medians, "samples": samples,
               "speedup_vs_fp32_reference": {name: value / reference for name, value in medians.items()},
               "speedup_vs_best_reference": medians["ours, fp32"] / best_reference,
               "probe_overhead": 1 - medians["ours, fp32, probes every 10"] / medians["ours, fp32"]}
        eager_step = BATCH / medians["ours, fp32"]
        for cache in ("cold", "warm"):
            name = f"ours, fp32, compiled ({cache} cache)"
            if name in medians:
                row[f"compile_seconds_{cache}"] = statistics.median(warmups[name]) - args.warmup * eager_step
        rows.append(row)
    support = cpu_bf16_support() if device.type == "cpu" else None
    lines = ["# Training throughput: our trainer's fp32, bf16 and compiled paths against a reference loop",
             f"Batch {BATCH}, {args.steps} timed steps after {args.warmup} warm-up steps (an emulated bf16: "
             f"{args.slow_steps}), median of {args.repeats} repeats in alternating order (the compiled path: once), `shapes` data (10,000 images). "
             f"bf16 on this {device.type.upper()}: " + ("native" + (f" ({support})" if support else "") if native else
                                                          "emulated (no native bfloat16)") + ".", "",
             "| model, image size | variant | images/s | x fp32 reference |", "|---|---|---:|---:|"]
    for row in rows:
        for name, value in row["images_per_sec"].items():
            lines.append(f"| {row['model']}, {row['image_size']} px | {name} | {value:.0f} | "
                         f"{row['speedup_vs_fp32_reference'][name]:.2f}x |")
    lines.append("")
    for row in rows:
        lines.append(f"- {row['model']} at {row['image_size']} px: probes every 10 steps cost {row['probe_overhead']:.1%}"
                     + (f"; torch.compile added {row['compile_seconds_cold']:.0f} s to the first {args.warmup} steps "
                        f"with an empty cache, {row['compile_seconds_warm']:.0f} s with inductor's cache from the run "
                        "before (each run compiles in its own worker process)"
                        if "compile_seconds_cold" in row else "") + ".")
    lines.append("")
    lines.append("Images per second of training (forward, backward, SGD step); evaluation is not included. "
                 "`x fp32 reference`: against the reference loop with 0 workers.")
    common.record("train-throughput", device, {"batch_size": BATCH, "steps": args.steps, "warmup": args.warmup,
                                               "native_bf16": native, "bf16_feature": support, "rows": rows}, lines,
                  variant=common.machine_variant(device))


if __name__ == "__main__":
    main()
