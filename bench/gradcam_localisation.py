"""Does Grad-CAM point at the object? The peak's hit rate inside the object's box on held-out shapes.

A run trained on ``shapes`` (``python -m explorer train --dataset shapes ...``) is explained on
held-out images drawn with another seed, at the default layer (the last stage) and at a finer one;
a hit is a heatmap maximum inside the object's bounding box. Chance is the box's share of the
image, averaged over the images: a peak placed at random would hit that often.

    python bench/gradcam_localisation.py RUN_DIR [--images 500]
"""

import argparse

from common import record

import numpy as np

from explorer.analysis.gradcam import cam_layers, default_layer, explain, run_classifier
from explorer.data.shapes import generate_shapes
from explorer.device import resolve_device


def hit_rate(peaks: list[tuple[int, int] | None], boxes: np.ndarray) -> float:
    """Share of peaks inside their box (row0, col0, row1, col1, exclusive ends); no peak is a miss."""
    hits = [peak is not None and box[0] <= peak[0] < box[2] and box[1] <= peak[1] < box[3]
            for peak, box in zip(peaks, boxes)]
    return float(np.mean(hits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the held-out images (not the run's)")
    args = parser.parse_args()
    classifier = run_classifier(args.run_dir)
    shapes = generate_shapes(args.images, seed=args.seed, image_size=classifier.input_size)
    area = (shapes.boxes[:, 2] - shapes.boxes[:, 0]) * (shapes.boxes[:, 3] - shapes.boxes[:, 1])
    chance = float(np.mean(area / classifier.input_size**2))
    stages = [name for name in cam_layers(classifier.model) if "." not in name]
    layers = [default_layer(classifier.model), stages[-2]]
    peaks = {layer: [] for layer in layers}
    correct = 0
    for image, label in zip(shapes.images, shapes.labels):
        # Explained for the true class, as localisation benchmarks do; accuracy is reported beside.
        results = explain(classifier, image, layers=layers, target=int(label))
        correct += results[0].predictions[0][0] == classifier.classes[label]
        for result in results:
            peaks[result.layer].append(result.peak)
    rates = {layer: hit_rate(peaks[layer], shapes.boxes) for layer in layers}
    accuracy = correct / len(shapes.images)
    payload = {"run": str(args.run_dir), "model": classifier.title, "images": args.images, "seed": args.seed,
               "accuracy": accuracy, "chance": chance, "hit_rate": rates}
    lines = [f"# Grad-CAM localisation on held-out shapes: {classifier.title}", "",
             f"{args.images} images drawn with seed {args.seed} (the run trained on other images); the target is "
             f"the true class. The model's accuracy on them: {accuracy:.1%}.", "",
             "| layer | peak inside the object's box | chance (box share of the image) |", "|---|---|---|"]
    for layer, rate in rates.items():
        lines.append(f"| {layer} | {rate:.1%} | {chance:.1%} |")
    record("gradcam-localisation-shapes", resolve_device("cpu"), payload, lines)


if __name__ == "__main__":
    main()
