"""Forward time of the paper's models on this machine, with parameters and MACs; recorded in bench/results/.

    python bench/complexity.py [--device auto] [--batch-sizes 1,8,32] [--repeats 3]

Writes bench/results/complexity-<device type>-<date>.json and .md: every number is measured here,
with the device, library versions and date beside it.
"""

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.analysis.complexity import PAPER_MODELS, complexity_report, parse_batch_sizes  # noqa: E402
from explorer.device import environment, resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    results = complexity_report(args.models.split(","), time_it=True, device=args.device,
                                batch_sizes=batch_sizes, repeats=args.repeats)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    record = {"date": date, "environment": environment(device), "repeats": args.repeats,
              "results": [result.to_json() for result in results]}
    out = ROOT / "bench" / "results" / f"complexity-{device.type}-{date}"
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    env = record["environment"]
    lines = [f"# Forward time and complexity, {env['device']}", "",
             f"{date}; torch {env['torch']}, torchvision {env['torchvision']}, Python {env['python']}; "
             f"median of {args.repeats} no-grad passes after warm-up.", "",
             "| model | params | GMACs | paper GMACs | " + " | ".join(f"ms @ batch {b}" for b in batch_sizes) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(batch_sizes)]
    for result in results:
        paper = f"{result.paper_macs / 1e9:.1f}" if result.paper_macs else "-"
        times = " | ".join(f"{result.forward_ms[b]:.1f}" for b in batch_sizes)
        lines.append(f"| {result.model} | {result.params:,} | {result.macs / 1e9:.3f} | {paper} | {times} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
