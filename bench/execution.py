"""How to run a preset's nets on this machine: threads, or worker processes with how many threads each.

    python bench/execution.py [--preset fig6] [--seed 0] [--repeats 1]

The Fig. 6 CPU preset's four nets (explorer/train/presets.py), submitted together through the
JobManager as the Train page does, with each execution choice:

    threads              the nets train in threads of this process (the app before issue 12)
    processes, shared    a worker process per net, cores divided among the nets (the default)
    processes, 2 each    a worker process per net asking for 2 threads each (oversubscribed)

Recorded: wall time from submission to the last run's end, and each net's final training error,
so the choice that keeps the minute is the one that does not change what the preset shows.
"""

import argparse
import os
import statistics
import tempfile
import time

import common
from explorer.device import resolve_device
from explorer.train.execution import LocalBackend, ThreadBackend
from explorer.train.jobs import JobManager
from explorer.train.presets import PRESETS


class TwoThreadsEach(LocalBackend):
    def cpu_threads(self, concurrent: int) -> int:
        return 2


CHOICES = {"threads": ThreadBackend, "processes, shared": LocalBackend, "processes, 2 each": TwoThreadsEach}


def run_once(key: str, backend, seed: int) -> dict:
    preset = PRESETS[key]
    configs = preset.configs("cpu", seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        manager = JobManager(folder, max_concurrent=len(configs), backend=backend)
        start = time.perf_counter()
        jobs = manager.submit_group(configs, group=f"{key}-{seed}")
        results = [manager.wait(job.run_dir) for job in jobs]
        seconds = time.perf_counter() - start
        assert all(result.state == "completed" for result in results), [result.message for result in results]
        return {"seconds": seconds, "train_error": {job.config.model.name: result.train_error
                                                    for job, result in zip(jobs, results)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fig6")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    load = os.getloadavg()
    samples = {name: [] for name in CHOICES}
    for repeat in range(args.repeats):
        for name, make in CHOICES.items():
            backend = make()
            if hasattr(backend, "warm"):
                backend.warm()  # the fork server starts once, with the app; not part of a preset's minute
            samples[name].append(run_once(args.preset, backend, args.seed))
    rows = [{"choice": name, "seconds": statistics.median(s["seconds"] for s in runs), "runs": runs}
            for name, runs in samples.items()]
    lines = [f"# Where a preset's nets train: threads or worker processes ({args.preset}, CPU schedule)",
             f"{len(PRESETS[args.preset].cpu_models)} nets submitted together through the JobManager, seed "
             f"{args.seed}, {args.repeats} repeat(s); wall time from submission to the last run's end. Load average "
             f"before: {load[0]:.2f}.", "",
             "| execution | seconds | final training error |", "|---|---:|---|"]
    for row in rows:
        errors = ", ".join(f"{model.removeprefix('cifar-')} {error:.0%}"
                           for model, error in row["runs"][-1]["train_error"].items())
        lines.append(f"| {row['choice']} | {row['seconds']:.1f} | {errors} |")
    common.record(f"execution-{args.preset}", resolve_device("cpu"),
                  {"preset": args.preset, "seed": args.seed, "load_before": load, "rows": rows}, lines)


if __name__ == "__main__":
    main()
