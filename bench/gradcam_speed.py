"""Grad-CAM speed: ResNet-50 at 224x224, one LayerGradCam (forward and backward to the layer).

Target: under 1 second on 2 CPU cores. Weight values do not change the time, so the model is
built with random weights (pretrained ones cannot be downloaded on every machine).

    python bench/gradcam_speed.py [--repeats 10] [--device cpu]
"""

import argparse
import statistics
import time

from common import record

import numpy as np
import torch

from explorer.analysis.gradcam import Classifier, explain, layer_gradcam
from explorer.device import resolve_device
from explorer.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model = build_model("resnet50").to(device).eval()
    inputs = torch.randn(1, 3, 224, 224, device=device)
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    classifier = Classifier(model, [str(i) for i in range(1000)], "resnet50")

    def timed(work) -> list[float]:
        for _ in range(5):  # warm-up: first calls allocate and pick kernels
            work()
        seconds = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
        return seconds

    rows = {}
    for layer in ("layer4", "layer3", "layer1"):
        rows[f"LayerGradCam at {layer}"] = timed(lambda: layer_gradcam(model, inputs, layer, 281))
    rows["whole page step (predict + Grad-CAM at layer4 + upsample)"] = timed(lambda: explain(classifier, image))
    payload = {"model": "resnet50", "input": [224, 224], "threads": torch.get_num_threads(), "repeats": args.repeats,
               "seconds": {name: {"median": statistics.median(s), "min": min(s), "max": max(s)}
                           for name, s in rows.items()},
               "target_seconds": 1.0}
    lines = ["# Grad-CAM speed: ResNet-50, 224x224, one image", "",
             f"{torch.get_num_threads()} torch threads, {args.repeats} repeats after 5 warm-up calls.", "",
             "| what | median s | min s | max s |", "|---|---|---|---|"]
    for name, s in rows.items():
        lines.append(f"| {name} | {statistics.median(s):.3f} | {min(s):.3f} | {max(s):.3f} |")
    verdict = "meets" if statistics.median(rows["LayerGradCam at layer4"]) < 1 else "misses"
    lines += ["", f"One Grad-CAM at the default layer (layer4) {verdict} the 1-second target."]
    record("gradcam-speed-resnet50", device, payload, lines)


if __name__ == "__main__":
    main()
