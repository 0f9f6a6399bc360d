"""``python -m explorer``: every capability of the app, without a browser.

Bad input exits non-zero with a one-line reason on stderr; set EXPLORER_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from explorer.device import DEVICE_CHOICES


def _split_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("give at least one model name, e.g. --models resnet18,cifar-resnet20")
    return names


def command_models(args: argparse.Namespace) -> int:
    from explorer.models import model_names, resolve

    names = model_names()
    if args.json:
        print(json.dumps([{"name": name, "family": resolve(name).family} for name in names]))
        return 0
    for name in names:
        print(name)
    print("# CIFAR names take any depth 6n+2 (8, 14, 20, ...), e.g. cifar-resnet98", file=sys.stderr)
    return 0


def command_complexity(args: argparse.Namespace) -> int:
    from explorer.analysis.complexity import (
        PAPER_MODELS,
        complexity_report,
        format_bytes,
        parse_batch_sizes,
        relative_difference,
    )

    names = _split_names(args.models) if args.models else list(PAPER_MODELS)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    results = complexity_report(names, time_it=args.time, device=args.device, batch_sizes=batch_sizes,
                                repeats=args.repeats)
    if args.json:
        print(json.dumps([result.to_json() for result in results]))
        return 0
    header = f"{'model':<20} {'params':>13} {'GMACs':>8} {'paper':>6} {'diff':>7} {'act/img':>10}"
    if args.time:
        header += "".join(f" {'ms@' + str(batch):>10}" for batch in batch_sizes)
    print(header)
    for result in results:
        difference = relative_difference(result.macs, result.paper_macs)
        paper = f"{result.paper_macs / 1e9:.1f}" if result.paper_macs else "-"
        line = (f"{result.model:<20} {result.params:>13,} {result.macs / 1e9:>8.3f} {paper:>6} "
                f"{(f'{difference:+.1%}' if difference is not None else '-'):>7} "
                f"{format_bytes(result.activation_bytes_per_image):>10}")
        if result.forward_ms:
            line += "".join(f" {result.forward_ms[batch]:>10.2f}" for batch in batch_sizes)
        print(line)
    print("MACs are multiply-adds per image (the paper's 'FLOPs'); act/img: activation memory kept for backward.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the model names")
    models.add_argument("--json", action="store_true", help="print a JSON list")
    models.set_defaults(run=command_models)

    complexity = commands.add_parser("complexity", help="parameters, multiply-adds, memory and forward time")
    complexity.add_argument("--models", help="comma-separated names (default: the paper's comparison set)")
    complexity.add_argument("--time", action="store_true", help="also time the forward pass on --device")
    complexity.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    complexity.add_argument("--batch-sizes", default="1,32", help="batch sizes to time, e.g. 1,32")
    complexity.add_argument("--repeats", type=int, default=5, help="timed passes per batch size (median)")
    complexity.add_argument("--json", action="store_true", help="print one JSON list, one object per model")
    complexity.set_defaults(run=command_complexity)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        if os.environ.get("EXPLORER_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
