"""A semester on one server: many short runs through one job manager, and a Runs page over hundreds.

    python bench/semester.py [--runs 200] [--page-runs 500]

1. One process with one JobManager (the pages' job API, local worker processes, two at a time)
   takes --runs one-step runs in a row. Its memory (RSS), threads and open file descriptors are read
   after every 10 runs; the record gives their growth per 100 runs. Goals: under 50 MB of RSS per
   100 runs, and no descriptor left per finished run.
2. A runs folder of --page-runs finished runs (copies of one real run, each with its own records),
   and the Runs page rendered under Streamlit's AppTest as the instructor (every run listed): the
   first render and the next. Goal: under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample(done: int) -> dict:
    return {"runs": done, "rss_mb": rss_mb(), "threads": threading.active_count(),
            "os_threads": len(os.listdir("/proc/self/task")), "fds": len(os.listdir("/proc/self/fd"))}


def many_runs(count: int, root: Path) -> list[dict]:
    from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
    from explorer.train.execution import LocalBackend
    from explorer.train.jobs import JobManager

    config = RunConfig(model=ModelConfig(name="cifar-resnet8"),
                       data=DataConfig(dataset="shapes-easy", train_size=64, test_size=32, image_size=16),
                       optim=OptimConfig(steps=1, batch_size=16), probes=ProbeConfig(probe_every=1), device="cpu")
    manager = JobManager(root, max_concurrent=2, backend=LocalBackend())
    samples = []
    done = 0
    while done < count:
        jobs = manager.submit_group([config, config], group=f"g{done}", owner=f"student-{done % 30}")
        for job in jobs:
            result = manager.wait(job.run_dir, timeout=300)
            assert result is not None and result.state == "completed", result
        done += len(jobs)
        if done == 2 or done % 10 == 0:
            samples.append(sample(done))
    manager.shutdown()
    return samples


def runs_page(count: int, template: Path, root: Path) -> dict:
    """In a fresh interpreter whose runs folder is ``root`` (the app reads it at import)."""
    for index in range(count):
        shutil.copytree(template, root / f"20261206-000000-run-{index:04x}")
    out = root.parent / "page.json"
    subprocess.run([sys.executable, __file__, "--page-only", str(out)], check=True,
                   env={**os.environ, "RESNET_EXPLORER_RUNS": str(root)})
    return {"runs": count, **json.loads(out.read_text())}


def render_runs_page() -> dict:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(common.ROOT / "explorer" / "app.py"), default_timeout=300)
    app.run()
    app.switch_page(str(common.ROOT / "pages" / "runs.py"))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
        assert not app.exception, [e.value for e in app.exception]
    rows = len(app.dataframe[0].value)
    return {"rows_listed": rows, "render_seconds": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--page-runs", type=int, default=500)
    parser.add_argument("--page-only", help=argparse.SUPPRESS)  # the Runs page part, in a fresh interpreter
    args = parser.parse_args()
    if args.page_only:
        Path(args.page_only).write_text(json.dumps(render_runs_page()))
        return
    work = Path(tempfile.mkdtemp(prefix="semester-"))
    os.environ["RESNET_EXPLORER_RUNS"] = str(work / "unused")
    try:
        samples = many_runs(args.runs, work / "runs")
        template = next((work / "runs").iterdir())
        page = runs_page(args.page_runs, template, work / "page-runs")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from explorer.device import resolve_device

    first, last = samples[0], samples[-1]
    per_100 = 100 / (last["runs"] - first["runs"])
    growth = {key: (last[key] - first[key]) * per_100 for key in ("rss_mb", "threads", "os_threads", "fds")}
    checks = {"RSS grows under 50 MB per 100 runs": growth["rss_mb"] < 50,
              "no open descriptor left per finished run": last["fds"] - first["fds"] <= 1,
              "threads do not grow with the runs": last["os_threads"] - first["os_threads"] <= 1,
              f"the Runs page lists {args.page_runs} runs and renders in under 2 s":
                  page["rows_listed"] == args.page_runs and max(page["render_seconds"][1:]) < 2.0}
    lines = [f"# A semester on one server: {args.runs} runs in a row, a Runs page of {args.page_runs}",
             "One process, one JobManager with local worker processes, two runs at a time, each run one step of "
             "cifar-resnet8 on 64 shapes-easy images (owners: 30 students in turn). Read after the first pair and "
             "every 10 runs.", "",
             "| check | result |", "|---|---|", *(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in checks.items()),
             "", "| runs | RSS (MB) | Python threads | OS threads | open descriptors |", "|---:|---:|---:|---:|---:|",
             *(f"| {s['runs']} | {s['rss_mb']:.0f} | {s['threads']} | {s['os_threads']} | {s['fds']} |"
               for s in samples if s["runs"] in (2, 10, 50, 100, 150, 200) or s is samples[-1]), "",
             f"Growth per 100 runs, from run {first['runs']} to run {last['runs']}: RSS {growth['rss_mb']:+.1f} MB, "
             f"Python threads {growth['threads']:+.1f}, OS threads {growth['os_threads']:+.1f}, descriptors "
             f"{growth['fds']:+.1f}.", "",
             f"Runs page as the instructor, {page['runs']} finished runs in the folder ({page['rows_listed']} listed), "
             f"under AppTest: renders of {', '.join(f'{t:.2f}' for t in page['render_seconds'])} s (the first reads "
             "every run's records; the next ones read only what was appended)."]
    common.record("semester", resolve_device("cpu"), {"samples": samples, "growth_per_100_runs": growth,
                                                      "runs_page": page, "checks": checks}, lines)


if __name__ == "__main__":
    main()
