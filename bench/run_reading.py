"""Reading a long run: a 50 MB metrics.jsonl, read whole, then again after an append, and the Runs page.

The GPU schedule's 64k steps with probes make a metrics file of about 50 MB. Times (a) the first
read of it (every line parsed), (b) a read after 100 more records (only those parsed), (c) the
Runs page under Streamlit's AppTest with that run, its first and its second render; and, for
comparison, the whole-file parse every read used to do. Goal: a page with long runs renders in
under 2 seconds.

    python bench/run_reading.py [--megabytes 50] [--repeats 3]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, record

RUNS = Path(tempfile.mkdtemp(prefix="bench-run-reading-"))
os.environ["RESNET_EXPLORER_RUNS"] = str(RUNS)  # before the app or the store is imported

import torch  # noqa: E402

from explorer.analysis.runs import read_run, warm_runs  # noqa: E402
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, RunConfig  # noqa: E402
from explorer.train.jsonl import CACHE  # noqa: E402
from explorer.train.store import Run  # noqa: E402

STEPS_PER_EPOCH = 391  # CIFAR-10 at batch 128


def metric(step: int, split: str) -> dict:
    return {"step": step, "epoch": step / STEPS_PER_EPOCH, "split": split, "loss": 2.3 / (1 + step / 5000),
            "error": 0.9 / (1 + step / 8000), "lr": 0.1 if step < 32_000 else 0.01, "time": step * 0.0123456,
            **({"images_per_sec": 10_412.345678} if split == "train" else {})}


def write_run(megabytes: float) -> tuple[Run, int]:
    """A completed run whose metrics.jsonl holds ``megabytes`` of records: train every step, test every 100."""
    config = RunConfig(model=ModelConfig(name="cifar-resnet110"), data=DataConfig(dataset="cifar10"),
                       optim=OptimConfig(steps=64_000, batch_size=128), device="cuda")
    run = Run.create(RUNS / "long-run", config.to_json())
    lines, size, step = [], 0, 0
    while size < megabytes * 1e6:
        step += 1
        for split in ("train", "test") if step % 100 == 0 else ("train",):
            line = json.dumps(metric(step, split)) + "\n"
            lines.append(line)
            size += len(line)
    (run.path / "metrics.jsonl").write_text("".join(lines))
    probe = {"kind": "response_std", "layers": [{"name": f"layer{i}", "std": 0.5} for i in range(110)]}
    probes = "".join(json.dumps({"step": probe_step, **probe}) + "\n" for probe_step in range(0, step, 1000))
    (run.path / "probes.jsonl").write_text(probes)
    run.set_status("completed", f"completed {step} steps", step=step, total_steps=step, images_per_sec=10_412.3)
    return run, step


def whole_file_parse(path: Path) -> int:
    """What every read did before: read all lines and parse each (explorer/train/store.py until 2026-11)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle.readlines() if line.strip() and isinstance(json.loads(line), dict))


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    run, steps = write_run(args.megabytes)
    path = run.path / "metrics.jsonl"
    size = path.stat().st_size
    records = sum(1 for _ in open(path))

    rows: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        rows.setdefault("before: whole-file parse, every read", []).append(timed(lambda: whole_file_parse(path)))
        CACHE.clear()
        rows.setdefault("(a) first read, read_run (every line parsed)", []).append(timed(lambda: read_run(run)))
        rows.setdefault("read_run again, nothing appended", []).append(timed(lambda: read_run(run)))
        parsed = CACHE.parsed_lines
        for extra in range(100):
            run.append_metric(metric(steps + 1 + extra, "train"))
        rows.setdefault("(b) read_run after 100 appended records", []).append(timed(lambda: read_run(run)))
        assert CACHE.parsed_lines - parsed == 100, CACHE.parsed_lines - parsed
        CACHE.clear()
        rows.setdefault("Run.summary, cold (the Runs table's row)", []).append(timed(run.summary))
        # Back to the 50 MB file for the next repeat (a resume rewrites it the same way).
        (path.with_suffix(".tmp")).write_text("".join(open(path).readlines()[:records]))
        os.replace(path.with_suffix(".tmp"), path)

    from streamlit.testing.v1 import AppTest

    def runs_page() -> AppTest:
        app = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=300)
        app.run()
        app.switch_page(str(ROOT / "pages" / "runs.py"))
        return app

    runs_page().run()  # once, for what a server does once: imports, the job manager
    for _ in range(args.repeats):
        app = runs_page()
        CACHE.clear()  # a first render reads the run from its files
        rows.setdefault("(c) Runs page, first render", []).append(timed(app.run))
        assert not app.exception, [e.value for e in app.exception]
        assert len(app.dataframe[0].value) == 1 and len(app.get("plotly_chart")) == 1
        rows.setdefault("(c) Runs page, second render", []).append(timed(app.run))
        # What a class sees: the server reads every run in the background when it starts
        # (explorer/ui/warmup.py), so a page opened after that parses nothing.
        CACHE.clear()
        warm_runs(run.path.parent)
        fresh = runs_page()
        rows.setdefault("(d) Runs page, first render after the server's background read", []).append(timed(fresh.run))
        assert not fresh.exception and len(fresh.get("plotly_chart")) == 1

    summary = {name: {"median": statistics.median(s), "min": min(s), "max": max(s)} for name, s in rows.items()}
    payload = {"metrics_bytes": size, "metrics_records": records, "steps": steps, "repeats": args.repeats,
               "threads": torch.get_num_threads(), "seconds": summary, "target_seconds": 2.0}
    lines = [f"# Reading a long run: {size / 1e6:.0f} MB metrics.jsonl", "",
             f"{records:,} records ({steps:,} steps: train every step, test every 100), a probes.jsonl of "
             f"{(run.path / 'probes.jsonl').stat().st_size / 1e6:.1f} MB; median of {args.repeats}. "
             "The first read parses every line; later reads parse only the lines appended since.", "",
             "| what | median s | min s | max s |", "|---|---:|---:|---:|"]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['median']:.3f} | {s['min']:.3f} | {s['max']:.3f} |")
    second = summary["(c) Runs page, second render"]["median"]
    first = summary["(c) Runs page, first render"]["median"]
    warmed = summary["(d) Runs page, first render after the server's background read"]["median"]
    lines += ["", f"The Runs page with this run renders in {first:.1f} s when its records are read for the first "
              f"time, {second:.2f} s after, and {warmed:.2f} s for a session that opens it once the server has read "
              f"the runs folder in the background (it does when it starts). The 2-second goal is "
              f"{'met' if first < 2 else 'met once the server has read the runs (missed by a page that opens in the first seconds after a start)' if warmed < 2 else 'missed'}."]
    record("run-reading", torch.device("cpu"), payload, lines)


if __name__ == "__main__":
    sys.exit(main())
