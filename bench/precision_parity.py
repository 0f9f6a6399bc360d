"""Does bf16 autocast train as well as fp32? Fig. 6's four nets on the CPU preset's schedule, on each seed both ways.

    python bench/precision_parity.py [--seeds 0-2] [--dataset shapes-easy] [--models ...]

Each net of the Fig. 6 CPU preset (plain-20, plain-56, ResNet-20, ResNet-56: the quick pair at
depth 20 is its first and third) is trained on each seed in fp32 and under bf16 autocast, two runs
at a time in two processes of one thread each. Recorded: the final training error (the mean of the
last three logs) and test error, per net, seed and precision. bf16 counts as matching fp32 for a
net when its mean over the seeds lies within the seed-to-seed spread (min to max) of fp32's (a
loose test, meant for three seeds), and, more strictly, when the seed-by-seed difference's 95% interval
holds 0 (``--seeds 0-9`` gives it ten pairs).

On a processor without native bfloat16 the bf16 runs are emulated: much slower (see
train-throughput-*), but they round the same way, so the errors are what a machine with
AVX512-BF16 or AMX would get up to the order of its summations.
"""

import argparse
import multiprocessing
import statistics

import common
from explorer.device import resolve_device
from explorer.train.precision import cpu_bf16_support
from explorer.train.presets import PRESETS


def paired_interval(left: list[float], right: list[float]) -> tuple[float, float, float]:
    """(low, mean, high): the mean of left - right, seed by seed, and its 95% t-interval."""
    from scipy import stats  # scikit-image's dependency, so in the default install

    differences = [a - b for a, b in zip(left, right)]
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / len(differences) ** 0.5
    return mean - half, mean, mean + half


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--dataset", default="shapes-easy")
    parser.add_argument("--models", default=",".join(PRESETS["fig6"].cpu_models))
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    models = args.models.split(",")
    preset = PRESETS["fig6"]
    jobs = [config for precision in ("bf16", "fp32") for seed in seeds
            for config in preset.configs("cpu", dataset=args.dataset, seed=seed, precision=precision)
            if config.model.name in models]
    jobs.sort(key=lambda config: "56" not in config.model.name)  # the slowest first, for a balanced pool
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(common.train_in_one_thread, jobs, chunksize=1)
    rows, lines = [], ["# bf16 autocast against fp32: final errors of Fig. 6's CPU preset nets", "",
                       f"Schedule: the Fig. 6 CPU preset's ({preset.describe('cpu', args.dataset)}); seeds {args.seeds}. "
                       f"bf16 on this CPU: {'native (' + cpu_bf16_support() + ')' if cpu_bf16_support() else 'emulated'}. "
                       "Training error: the mean of the last three logs; test error: the last evaluation.", "",
                       "The same seed gives both runs the same initial weights and the same batches, so only the "
                       "arithmetic differs: the last columns pair them, seed by seed (bf16 minus fp32, in points of "
                       "error), with a 95% t-interval of the mean difference. An interval that excludes 0 is a "
                       "difference these seeds can tell from noise.", "",
                       "| model | error | fp32 per seed | bf16 per seed | bf16 mean within fp32's spread "
                       "| bf16 - fp32, mean (95% interval) | bf16 worse on |",
                       "|---|---|---|---|---|---|---|"]
    for model in models:
        for measure in ("train_error", "test_error"):
            values = {precision: [next(r[measure] for r in results if r["model"] == model and r["seed"] == seed
                                       and r["precision"] == precision) for seed in seeds]
                      for precision in ("fp32", "bf16")}
            mean = statistics.mean(values["bf16"])
            within = min(values["fp32"]) <= mean <= max(values["fp32"])
            low, difference, high = paired_interval(values["bf16"], values["fp32"])
            worse = sum(b > f for b, f in zip(values["bf16"], values["fp32"]))
            rows.append({"model": model, "measure": measure, **values, "bf16_mean_within_fp32_spread": within,
                         "paired_difference": {"mean": difference, "low": low, "high": high}, "bf16_worse_on": worse})
            lines.append(f"| {model} | {measure.replace('_', ' ')} | {', '.join(f'{v:.1%}' for v in values['fp32'])} | "
                         f"{', '.join(f'{v:.1%}' for v in values['bf16'])} | {'yes' if within else '**no**'} | "
                         f"{difference * 100:+.1f} ({low * 100:+.1f} to {high * 100:+.1f}) | "
                         f"{worse} of {len(seeds)} |")
    seconds = {precision: statistics.median(r["seconds"] for r in results if r["precision"] == precision)
               for precision in ("fp32", "bf16")}
    lines += ["", f"Median seconds per run, one thread, two runs at a time: fp32 {seconds['fp32']:.0f}, "
                  f"bf16 {seconds['bf16']:.0f}."]
    common.record("precision-parity", resolve_device("cpu"),
                  {"seeds": seeds, "dataset": args.dataset, "native_bf16": cpu_bf16_support(), "rows": rows,
                   "runs": results}, lines, variant=common.machine_variant(resolve_device("cpu")))


if __name__ == "__main__":
    main()
