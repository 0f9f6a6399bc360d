"""Shared by the benchmark scripts: where results go and what is written beside them."""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine_variant(device) -> str:
    """"-bf16" where training here takes bfloat16 by default (a CPU with AVX512-BF16 or AMX), else "".

    A one-minute run's numbers depend on the precision it trains in, so records of such machines are
    kept apart from those of fp32 ones, and the pages read the record of the machine's kind.
    """
    from explorer.train.presets import BF16_RECORD, cpu_trains_in_bf16

    return BF16_RECORD if device.type == "cpu" and cpu_trains_in_bf16() else ""


def record(name: str, device, payload: dict, markdown: list[str], variant: str = "") -> Path:
    """Write results/<name>-<device><variant>-<date>.json and .md, with device, versions and date."""
    from explorer.device import environment

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    env = environment(device)
    path = RESULTS / f"{name}-{device.type}{variant}-{date}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"date": date, "environment": env, **payload}, indent=1) + "\n")
    header = [f"Measured {date} on {env['device']}; torch {env['torch']}, torchvision {env['torchvision']}, "
              f"Python {env['python']}.", ""]
    path.with_suffix(".md").write_text("\n".join([markdown[0], "", *header, *markdown[1:]]) + "\n")
    print("\n".join(markdown))
    return path


def train_in_one_thread(config) -> dict:
    """Train ``config`` to its end in this process with one intra-op thread (as one of the app's slots
    beside others), in a folder thrown away after: its final numbers and how long it took.

    For process pools (``multiprocessing`` with spawn), which need a function they can import.
    """
    import tempfile
    import time

    import torch

    from explorer.analysis.runs import read_run, response_summary
    from explorer.train.store import Run
    from explorer.train.trainer import train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        run = Run.create(f"{folder}/run", config.to_json())
        start = time.perf_counter()
        result = train(config, run)
        seconds = time.perf_counter() - start
        record = read_run(run.path)
        precision = run.status()["environment"]["precision"]
    assert result.state == "completed", result.message
    train_errors = [m["error"] for m in record.metrics if m["split"] == "train"][-3:]  # three logs smooth the noise
    responses = response_summary([record])
    return {"model": config.model.name, "seed": config.seed, "precision": precision, "seconds": seconds,
            "train_error": sum(train_errors) / len(train_errors), "test_error": result.test_error,
            "mean_response_std": responses[0]["mean_std"] if responses else None}
