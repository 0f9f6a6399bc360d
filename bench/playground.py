"""The playground's nets on the spiral: plain against residual at depths 10, 50 and 100.

    python bench/playground.py [--steps 1500] [--seeds 0,1,2] [--norms none,batchnorm]

For each depth, normalisation and seed, the plain and the residual net train the same number of
steps from the same initial weights on the same batches (the page's and the CLI's defaults
otherwise: 500 points, half for training, noise 0.05, width 16, ReLU, Adam at lr 0.001, batch 32),
each alone in this process with one intra-op thread, as the CLI runs them. Records final training
and test loss and accuracy, and training steps per second, under bench/results/.
"""

import argparse
import os
import statistics

import torch

import common
from explorer.playground import PlaygroundSettings, train_once

DEPTHS = (10, 50, 100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--norms", default="none,batchnorm")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    norms = args.norms.split(",")
    load_before = os.getloadavg()
    rows = []
    for norm in norms:
        for depth in DEPTHS:
            for seed in seeds:
                for kind in ("plain", "residual"):
                    settings = PlaygroundSettings(dataset="spiral", depth=depth, norm=norm, nets=kind, seed=seed)
                    result = train_once(settings, args.steps)[kind]
                    rows.append({"depth": depth, "norm": norm, "net": kind, "seed": seed, **result})
                    print(f"{norm:>9} depth {depth:>3} seed {seed} {kind:>8}: train loss {result['train_loss']:.3f} "
                          f"acc {result['train_accuracy']:.1%}, test loss {result['test_loss']:.3f} "
                          f"acc {result['test_accuracy']:.1%}, {result['steps_per_sec']:.0f} steps/s", flush=True)
    load_after = os.getloadavg()

    def cell(norm, depth, kind, key):
        return statistics.median(row[key] for row in rows
                                 if (row["norm"], row["depth"], row["net"]) == (norm, depth, kind))

    lines = [
        "# Plain against residual deep MLPs on the spiral (the Playground's nets)",
        f"{args.steps} steps per net, seeds {args.seeds} (median over seeds below; every run in the JSON); "
        "500 points (250 training, 250 test), noise 0.05, width 16, ReLU, PyTorch's default initial weights, "
        "Adam lr 0.001, batch 32. Plain and residual start from identical weights and see identical batches. "
        f"Load average (1 min) {load_before[0]:.1f} before and {load_after[0]:.1f} after: on 2 cores, "
        "other work on the machine lowers steps/s.",
        "",
        "| norm | depth | net | train loss | train acc | test loss | test acc | steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for norm in norms:
        for depth in DEPTHS:
            for kind in ("plain", "residual"):
                row = {key: cell(norm, depth, kind, key) for key in
                       ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "steps_per_sec")}
                lines.append(f"| {norm} | {depth} | {kind} | {row['train_loss']:.3f} | {row['train_accuracy']:.1%} | "
                             f"{row['test_loss']:.3f} | {row['test_accuracy']:.1%} | {row['steps_per_sec']:.0f} |")
    final_loss = {(row["norm"], row["depth"], row["net"], row["seed"]): row["train_loss"] for row in rows}
    residual_wins = {
        f"{norm}-{depth}": sum(final_loss[norm, depth, "residual", seed] < final_loss[norm, depth, "plain", seed]
                               for seed in seeds)
        for norm in norms for depth in DEPTHS
    }
    lines += ["", "Seeds on which the residual net ends with the lower training loss: "
              + ", ".join(f"{key}: {wins} of {len(seeds)}" for key, wins in residual_wins.items()) + "."]
    common.record("playground-spiral", torch.device("cpu"),
                  {"steps": args.steps, "seeds": seeds, "norms": norms, "depths": list(DEPTHS),
                   "load_average_before": load_before, "load_average_after": load_after,
                   "residual_lower_train_loss": residual_wins, "runs": rows}, lines)


if __name__ == "__main__":
    main()
