"""What a preset's runs spend reading a folder of images, with and without the decoded-folder cache.

    python bench/folder_cache.py --dataset folder:PATH [--runs 4] [--image-size 16] [--repeats 3]

A CPU preset starts its four nets at once, each in its own worker process, and each reads the data
set. Without the cache (explorer/data/folder.py) every one of them decodes every file; with it the
first decodes while the others wait, and every later preset reads the decoded arrays. Timed here:
from starting ``--runs`` processes together to the last one holding the data set, (a) each
decoding for itself (the cache folder cannot be created), (b) the first preset on a machine (an
empty cache), (c) every preset after it. Process start-up is the same in all three and included.
"""

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time

import common
from explorer.data.base import DATA_DIR_ENV
from explorer.device import resolve_device


def load(dataset: str, image_size: int, data_dir: str) -> float:
    os.environ[DATA_DIR_ENV] = data_dir
    from explorer.data import load_dataset

    load_dataset(dataset, image_size=image_size)
    return time.perf_counter()


def together(dataset: str, image_size: int, runs: int, data_dir: str) -> float:
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with context.Pool(runs) as pool:
        ends = pool.starmap(load, [(dataset, image_size, data_dir)] * runs)
    return max(ends) - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset-note", default="")
    args = parser.parse_args()
    seconds = {"decoded in every run": [], "first preset (empty cache)": [], "later presets (cache filled)": []}
    with tempfile.TemporaryDirectory() as scratch:
        blocker = os.path.join(scratch, "a-file")
        open(blocker, "w").close()
        for repeat in range(args.repeats):
            seconds["decoded in every run"].append(
                together(args.dataset, args.image_size, args.runs, os.path.join(blocker, "cache")))
            cache = os.path.join(scratch, f"cache-{repeat}")
            seconds["first preset (empty cache)"].append(together(args.dataset, args.image_size, args.runs, cache))
            seconds["later presets (cache filled)"].append(together(args.dataset, args.image_size, args.runs, cache))
            print({case: round(values[-1], 2) for case, values in seconds.items()}, flush=True)
    lines = [f"# Reading a folder of images in {args.runs} runs at once, with and without the decoded-folder cache", "",
             f"{args.dataset}" + (f" ({args.dataset_note})" if args.dataset_note else "") + f" at {args.image_size}x"
             f"{args.image_size}: seconds from starting {args.runs} worker processes together (spawned, as the app's "
             "workers are) to the last one holding the data set; process start-up included. "
             f"{args.repeats} repeats, each with a new cache.", "",
             "| case | seconds per repeat | median |", "|---|---|---|"]
    for case, values in seconds.items():
        lines.append(f"| {case} | {', '.join(f'{v:.2f}' for v in values)} | {statistics.median(values):.2f} |")
    common.record("folder-cache", resolve_device("cpu"),
                  {"dataset": args.dataset, "dataset_note": args.dataset_note, "runs": args.runs,
                   "image_size": args.image_size, "seconds": seconds}, lines)


if __name__ == "__main__":
    main()
