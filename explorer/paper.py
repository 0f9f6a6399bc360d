"""The paper's own numbers, kept as data in ``assets/paper_tables.json``."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@lru_cache(maxsize=1)
def paper_tables() -> dict:
    with open(ASSETS / "paper_tables.json") as handle:
        return json.load(handle)


def paper_macs(model_name: str) -> float | None:
    """Table 1's multiply-adds at 224x224 for this model, or None where the paper gives none."""
    gmacs = paper_tables()["table1_macs"]["gmacs"].get(model_name)
    return None if gmacs is None else gmacs * 1e9


def paper_cifar_row(model_name: str) -> dict | None:
    for row in paper_tables()["table6_cifar"]["rows"]:
        if row["model"] == model_name:
            return row
    return None


def paper_params(model_name: str) -> float | None:
    row = paper_cifar_row(model_name)
    return None if row is None else row["params_millions"] * 1e6
