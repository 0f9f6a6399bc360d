"""Shared by the benchmark scripts: where results go and what is written beside them."""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def record(name: str, device, payload: dict, markdown: list[str]) -> Path:
    """Write results/<name>-<device>-<date>.json and .md, with device, versions and date."""
    from explorer.device import environment

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    env = environment(device)
    path = RESULTS / f"{name}-{device.type}-{date}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"date": date, "environment": env, **payload}, indent=1) + "\n")
    header = [f"Measured {date} on {env['device']}; torch {env['torch']}, torchvision {env['torchvision']}, "
              f"Python {env['python']}.", ""]
    path.with_suffix(".md").write_text("\n".join([markdown[0], "", *header, *markdown[1:]]) + "\n")
    print("\n".join(markdown))
    return path
