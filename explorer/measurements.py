"""What the benchmarks recorded (bench/results/), for texts that quote a measured figure.

A text in the app or the CLI that states a measured number reads it here, from the newest
recorded result, so re-measuring updates every text that quotes it and no test asserts on a
number written into prose. Each result says where, with what and when it was measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "bench" / "results"


@dataclass(frozen=True)
class Recorded:
    path: Path
    data: dict

    @property
    def source(self) -> str:
        """Where it is, for a text to cite: ``bench/results/presets-cpu-2026-11-23.json``."""
        return f"bench/results/{self.path.name}"

    @property
    def device(self) -> str:
        return self.data.get("environment", {}).get("device", "an unrecorded device")

    @property
    def date(self) -> str:
        return self.data.get("date", "an unrecorded date")


def latest(name: str, results_dir: Path = RESULTS_DIR) -> Recorded | None:
    """The newest ``<name>-<date>.json`` (bench/common.py names them so), or None when none is readable."""
    for path in sorted(results_dir.glob(f"{name}-????-??-??.json"), reverse=True):
        try:
            return Recorded(path, json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return None
