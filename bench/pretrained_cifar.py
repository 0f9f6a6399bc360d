"""The published converged CIFAR-10 ResNets on real CIFAR-10 test images: Table 6 live, the lesion
study of ResNet-56, its 1-D loss landscape and Fig. 7, as the app and the CLI compute them.

    python bench/pretrained_cifar.py --weights DIR [--npz PATH] [--lesion-images 500]

--weights: a folder holding akamaster/pytorch_resnet_cifar10's ``resnet{D}-{hash}.th`` files (this
machine cannot download them: the search tool's ``fetch`` brings that repository, whose
``pretrained_models/`` has ResNet-20/32/44/56 as real blobs). They are copied into a torch hub cache
of this bench's own and checked against the hash in their names, as a download would be.
--npz: CIFAR-10's verification subset in ../shared (1,017 real test images), written as a
``folder:DIR`` of PNGs in a temporary folder (the whole test set is not on this machine). Nothing
of either is kept in the repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

DEFAULT_NPZ = common.ROOT.parent / "shared" / "data" / "cifar10-subset" / "cifar10-subset.npz"


def export_test_folder(npz: Path, out: Path) -> Path:
    """The subset as folder:DIR (train/ and test/ of class subfolders of PNGs): the layout a user with
    CIFAR-10 as files has. Its train split is not read by these evaluations but the layout asks for it."""
    import numpy as np
    from PIL import Image

    with np.load(npz) as data:
        names = [str(name) for name in data["label_names"]]
        for split in ("train", "test"):
            for index, (image, label) in enumerate(zip(data[f"x_{split}"], data[f"y_{split}"])):
                folder = out / split / names[label]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{index:05d}.png")
    return out


def random_deletions_reading(rows: list[dict]) -> str:
    """Whether the mean error rose with every further block deleted at random, against Veit et al."""
    means = [row["mean_error"] for row in rows]
    if all(later > earlier for earlier, later in zip(means, means[1:])):
        return "- Here too the mean error rises with every further block deleted at random, as Veit et al. found."
    widest = max(row["std_error"] for row in rows)
    return (f"- Here the mean error does not rise at every k ({', '.join(f'{100 * m:.1f}%' for m in means)} for k = "
            f"1..{len(means)}), unlike the smooth rise Veit et al. report: with {rows[0]['draws']} random sets per k "
            f"the draws spread by up to {100 * widest:.1f} points (one standard deviation), because deleting a "
            "downsampling block costs far more than any other; more draws would smooth the mean.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="folder with the published resnet{D}-{hash}.th files")
    parser.add_argument("--npz", default=str(DEFAULT_NPZ))
    parser.add_argument("--lesion-images", type=int, default=500)
    parser.add_argument("--lesion-blocks", type=int, default=5)
    parser.add_argument("--landscape-points", type=int, default=21)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pretrained-cifar-"))
    os.environ["TORCH_HOME"] = str(work / "torch-home")
    os.environ["RESNET_EXPLORER_PRETRAINED_RUNS"] = str(work / "runs")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> None:
    import torch

    from explorer.analysis.evaluate import evaluate_run, evaluation_reading, layer_responses
    from explorer.analysis.landscape import landscape_reading, loss_landscape
    from explorer.analysis.lesion import lesion_reading, lesion_study
    from explorer.device import resolve_device
    from explorer.models.published import PUBLISHED, cached_file
    from explorer.train.pretrained import pretrained_run

    torch.set_num_threads(2)
    checkpoints = work / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    have = []
    for depth, net in PUBLISHED.items():
        source = Path(args.weights) / net.file_name
        if source.is_file():
            shutil.copy(source, cached_file(net))
            have.append(depth)
    missing = [depth for depth in PUBLISHED if depth not in have]
    started = time.perf_counter()
    folder = export_test_folder(Path(args.npz), work / "cifar10-subset")
    dataset = f"folder:{folder}"
    print(f"test folder written in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    evaluations, responses = [], []
    for depth in have:
        run_dir = pretrained_run(PUBLISHED[depth].spec, dataset)
        evaluate_run(run_dir, images=100, device="cpu")  # warm-up: the folder's decoding and the first passes
        result = evaluate_run(run_dir, device="cpu")
        evaluations.append(result)
        responses.append(layer_responses(run_dir, images=500, device="cpu"))
        print(f"ResNet-{depth}: {result['error']:.2%} in {result['seconds']:.1f} s", file=sys.stderr)

    lesion = landscape = None
    if 56 in have:
        run_dir = pretrained_run(PUBLISHED[56].spec, dataset)
        lesion = lesion_study(run_dir, blocks=args.lesion_blocks, images=args.lesion_images, draws=5, device="cpu")
        print(f"lesion study: {lesion['seconds']:.0f} s", file=sys.stderr)
        landscape = loss_landscape(run_dir, points=args.landscape_points, images=args.lesion_images, dims=1,
                                   device="cpu", max_seconds=None)
        print(f"landscape: {landscape['seconds']:.0f} s", file=sys.stderr)

    lines = ["# The published converged CIFAR-10 ResNets, measured here",
             f"Weights: akamaster/pytorch_resnet_cifar10's files for ResNet-{', '.join(map(str, have))}, strictly "
             f"mapped onto cifar-resnet{{D}}, evaluated with ImageNet's mean and std as they were trained"
             + (f"; ResNet-{', '.join(map(str, missing))}: not on this machine (the fetched copy of that "
                f"repository lacks those blobs), not measured" if missing else "") + ". "
             f"Test images: the first {evaluations[0]['images'] if evaluations else 0:,} of CIFAR-10's test set "
             "(all the real test images on this machine, not the whole 10,000), read as a folder of PNGs. "
             "2 CPU threads.", "",
             "| net | measured here (%) | published (%) | paper, Table 6 (%) | seconds to evaluate |",
             "|---|---:|---:|---:|---:|",
             *(f"| {r['model']} | {100 * r['error']:.2f} | {100 * r['published_error']:.2f} | "
               f"{100 * r['paper_error']:.2f} | {r['seconds']:.1f} |" for r in evaluations), "",
             *(f"- {line}" for line in evaluation_reading(evaluations)), "",
             "## Fig. 7: layer responses at the converged weights (first 500 test images)", "",
             "| net | layers | mean std | smallest | largest |", "|---|---:|---:|---:|---:|",
             *(f"| {r['model']} | {len(r['layers'])} | {r['mean_std']:.3f} | "
               f"{min(layer['std'] for layer in r['layers']):.3f} | {max(layer['std'] for layer in r['layers']):.3f} |"
               for r in responses)]
    if len(responses) >= 2:
        means = [r["mean_std"] for r in responses]
        shrinking = all(later < earlier for earlier, later in zip(means, means[1:]))
        values = ", ".join(f"{r['model']} {r['mean_std']:.3f}" for r in responses)
        lines += ["", f"- Deeper ResNets {'have' if shrinking else 'do not all have'} smaller mean responses here "
                      f"({values}); the paper reads Fig. 7 "
                      "as deeper ResNets having smaller responses. No converged plain net is published, so the "
                      "plain-against-residual half of Fig. 7 cannot be measured on converged nets here."]
    if lesion:
        singles = [block["error"] - lesion["baseline_error"] for block in lesion["blocks"] if block["deletable"]]
        down = [block["error"] - lesion["baseline_error"] for block in lesion["blocks"]
                if block["deletable"] and block["kind"] == "downsampling"]
        lines += ["", f"## Lesion study of the converged ResNet-56 (first {lesion['images']:,} test images, "
                      f"{lesion['seconds']:.0f} s)", "",
                  f"Intact error {lesion['baseline_error']:.2%}. One block deleted, each of the "
                  f"{len(singles)}: median rise {100 * statistics.median(singles):+.2f} points, largest "
                  f"{100 * max(singles):+.2f}, smallest {100 * min(singles):+.2f}; the downsampling blocks "
                  f"{', '.join(f'{100 * value:+.2f}' for value in down)} points.", "",
                  "| k blocks deleted at random | mean error (%) | std over draws |", "|---:|---:|---:|",
                  *(f"| {row['k']} | {100 * row['mean_error']:.2f} | {100 * row['std_error']:.2f} |"
                    for row in lesion["random_deletions"]), "",
                  *(f"- {line}" for line in lesion_reading([lesion])),
                  random_deletions_reading(lesion["random_deletions"]),
                  "- Veit et al. (2016) report for ResNet-110 on CIFAR-10: deleting any single block but a "
                  "downsampling one leaves the error nearly unchanged, and the error rises smoothly with the "
                  "number of blocks deleted. Their net is ResNet-110 (not on this machine); this is ResNet-56."]
    if landscape:
        lines += ["", f"## 1-D loss landscape of the converged ResNet-56 ({landscape['points']} points from "
                      f"-{landscape['span']:g} to {landscape['span']:g}, first {landscape['images']:,} test images, "
                      f"{landscape['seconds']:.0f} s)", "",
                  "| a | " + " | ".join(f"{a:+.2f}" for a in landscape["axis"]) + " |",
                  "|---|" + "---:|" * len(landscape["axis"]),
                  "| loss | " + " | ".join("gap" if v is None else f"{v:.3f}" for v in landscape["loss"]) + " |", "",
                  *(f"- {line}" for line in landscape_reading([landscape]))]
    payload = {"have": have, "missing": missing, "evaluations": evaluations, "responses": responses,
               "lesion": lesion, "landscape": landscape}
    common.record("pretrained-cifar", resolve_device("cpu"), payload, lines)


if __name__ == "__main__":
    main()
