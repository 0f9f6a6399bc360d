"""``python -m explorer``: every capability of the app, without a browser.

Bad input exits non-zero with a one-line reason on stderr; set EXPLORER_DEBUG=1 for tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from explorer.device import DEVICE_CHOICES

DEFAULT_TRAIN_STEPS = 1000  # when neither --steps nor --epochs is given


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
    from explorer.analysis.complexity import PAPER_MODELS, complexity_report, parse_batch_sizes, relative_difference
    from explorer.models.cost import format_bytes

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


def command_train(args: argparse.Namespace) -> int:
    import dataclasses
    import signal
    from pathlib import Path

    from explorer.train.config import config_from_args
    from explorer.train.jobs import JobManager

    if args.resume:
        manager = JobManager(Path(args.resume).resolve().parent, max_concurrent=1, backend=_backend(args))
        job = manager.resume(args.resume)
    else:
        config = config_from_args(args)
        if config.optim.steps is None and config.optim.epochs is None:
            config = config.replace(optim=dataclasses.replace(config.optim, steps=DEFAULT_TRAIN_STEPS))
        if not args.out:
            raise ValueError("give --out DIR, the folder for the run's records")
        _warn_if_emulated(config.precision, config.device, args)
        show = sys.stderr.isatty() and not args.json
        if config.data.dataset == "cifar10" and show:
            _download_with_progress(config)
        manager = JobManager(Path(args.out).resolve().parent, max_concurrent=1, backend=_backend(args))
        job = manager.submit(config, run_dir=args.out)
    # Ctrl-C stops the run cleanly (a checkpoint is saved; --resume continues it).
    signal.signal(signal.SIGINT, lambda *_: manager.stop(job.run_dir))
    bar = _ProgressBar(enabled=sys.stderr.isatty() and not args.json)
    while not job.ended.wait(0.5):
        status = job.run.status()
        if status.get("state") == "running":
            bar.update(status)
    bar.close()
    result = job.result
    record = result.to_json()
    if args.json:
        print(json.dumps({key: record[key] for key in
                          ("run_dir", "state", "train_error", "test_error", "images_per_sec", "message", "step")}))
    elif result.state not in ("completed", "stopped"):
        print(f"error: run {result.state}: {result.message}", file=sys.stderr)
    else:
        test = f"{result.test_error:.2%}" if result.test_error is not None else "-"
        train_error = f"{result.train_error:.2%}" if result.train_error is not None else "-"
        print(f"{result.state}: {result.message}; train error {train_error}, test error {test}; {result.run_dir}")
    return 0 if result.state in ("completed", "stopped") else 1


def _warn_if_emulated(precision: str, device: str, args: argparse.Namespace) -> None:
    """One line on stderr when bf16 is asked for where this machine only emulates it (the run goes on)."""
    if precision != "bf16" or getattr(args, "backend", "local") not in (None, "local"):
        return  # a Ray cluster's nodes decide for themselves, and the run's environment says what they did
    from explorer.device import resolve_device
    from explorer.train.precision import native_bf16

    where = resolve_device(device)
    if not native_bf16(where):
        print(f"warning: this {where.type.upper()} has no native bfloat16; --precision bf16 is emulated and much "
              "slower than fp32 (auto picks fp32 here)", file=sys.stderr)


def command_preset(args: argparse.Namespace) -> int:
    """Train a preset's models at once, as the Train page does, and print where each ended."""
    import signal
    import time
    from pathlib import Path

    from explorer.train.jobs import JobManager
    from explorer.train.presets import PRESETS

    if args.key not in PRESETS:
        raise ValueError(f"unknown preset {args.key!r}; valid: {', '.join(PRESETS)}")
    preset = PRESETS[args.key]
    backend = _backend(args)
    device = backend.training_device(args.device)  # the schedule suits where the runs train: here, or a cluster
    configs = preset.configs(device, dataset=args.dataset, seed=args.seed, precision=args.precision,
                             compile=args.compile)
    _warn_if_emulated(args.precision, device, args)
    manager = JobManager(Path(args.out), max_concurrent=len(configs), backend=backend)
    started = time.perf_counter()
    jobs = manager.submit_group(configs, group=time.strftime("%Y%m%d-%H%M%S"))
    if not args.json:
        print(f"{preset.title_on(device)}: {preset.describe(device, args.dataset)}", file=sys.stderr)
    signal.signal(signal.SIGINT, lambda *_: [manager.stop(job.run_dir) for job in jobs])
    for job in jobs:
        while not job.ended.wait(0.5):
            pass
    seconds = time.perf_counter() - started
    runs = [{"model": job.config.model.name, "run_dir": job.run_dir, "state": job.result.state,
             "train_error": job.result.train_error, "test_error": job.result.test_error, "message": job.result.message}
            for job in jobs]
    if args.json:
        print(json.dumps({"preset": args.key, "device": device, "seconds": seconds, "runs": runs}))
    else:
        for run in runs:
            train_error = f"{run['train_error']:.1%}" if run["train_error"] is not None else "-"
            test_error = f"{run['test_error']:.1%}" if run["test_error"] is not None else "-"
            print(f"{run['model']:<18} {run['state']:<10} train error {train_error:>6}  test error {test_error:>6}  "
                  f"{run['run_dir']}")
        print(f"{seconds:.0f} s. Shows: {preset.lines(device, args.dataset)[0]}")
    return 0 if all(run["state"] in ("completed", "stopped") for run in runs) else 1


def _backend(args: argparse.Namespace):
    """The execution backend the flags ask for (--backend, --ray-address)."""
    from explorer.train.jobs import resolve_backend

    if args.backend == "ray":
        return resolve_backend("ray", address=args.ray_address)
    if args.ray_address:
        raise ValueError("--ray-address needs --backend ray")
    return resolve_backend(args.backend)


def _add_backend_flags(parser: argparse.ArgumentParser) -> None:
    from explorer.train.jobs import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="where the runs train: local worker processes (default, or $RESNET_EXPLORER_BACKEND), "
                             "threads of this process, or a Ray cluster")
    parser.add_argument("--ray-address", default=None,
                        help="the Ray cluster to use with --backend ray (default: $RAY_ADDRESS, else a local Ray)")


def _download_with_progress(config) -> None:
    """Fetch CIFAR-10 with a progress line before training (the trainer then reads it from disk)."""
    from explorer.data.cifar10 import load_cifar10

    load_cifar10(data_dir=config.data.data_dir, progress=_bytes_progress("CIFAR-10"))
    sys.stderr.write("\n")


def _bytes_progress(what: str):
    """A ``progress(done, total)`` that redraws one stderr line: downloading WHAT: N of M MiB."""

    def report(done: int, total: int) -> None:
        of = f" of {total / 2**20:,.0f} MiB" if total else ""
        sys.stderr.write(f"\rdownloading {what}: {done / 2**20:,.0f} MiB{of}   ")
        sys.stderr.flush()

    return report


class _ProgressBar:
    """One line redrawn on a terminal: step, loss, error, images/s and time left."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def update(self, status: dict) -> None:
        if not self.enabled:
            return
        done, total = status.get("step", 0), status.get("total_steps") or 1
        filled = int(30 * done / total)
        left = status.get("seconds_left")
        eta = f"{left / 60:.1f} min left" if left else ""
        rate = status.get("images_per_sec") or 0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {rate:,.0f} img/s {eta}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def command_runs(args: argparse.Namespace) -> int:
    from explorer.train.store import DEFAULT_RUNS_DIR, list_runs

    words = list(args.words)
    if words and words[0] in ("export", "import"):
        return _runs_archive(words[0], words[1:], args)
    if len(words) > 1:
        raise ValueError(f"runs takes one folder, or export RUN_DIR... --out FILE.zip, or import FILE.zip; got {words}")
    args.dir = words[0] if words else str(DEFAULT_RUNS_DIR)
    if args.prune_older_than is not None:
        return _prune(args)

    # Reads only: a run whose process is gone shows as interrupted, but its status.json is left
    # to the job manager that resumes it (another process may be writing it right now).
    summaries = [run.summary() for run in list_runs(args.dir)]
    if args.json:
        print(json.dumps(summaries))
        return 0
    if not summaries:
        print(f"no runs in {args.dir}")
        return 0

    def percent(value):
        return f"{value:.2%}" if isinstance(value, (int, float)) else "-"

    print(f"{'run':<48} {'state':<12} {'model':<18} {'step':>11} {'train err':>9} {'test err':>9}")
    for summary in summaries:
        steps = f"{summary['step']}/{summary['total_steps'] or '?'}"
        print(f"{summary['id'][:48]:<48} {summary['state'] or '?':<12} {summary['model'] or '?':<18} {steps:>11} "
              f"{percent(summary['train_error']):>9} {percent(summary['test_error']):>9}")
    return 0


def _runs_archive(action: str, paths: list[str], args: argparse.Namespace) -> int:
    """``runs export RUN_DIR... --out FILE.zip`` and ``runs import FILE.zip [--into DIR]``."""
    from explorer.train.storage import export_runs, import_runs
    from explorer.train.store import DEFAULT_RUNS_DIR

    if action == "export":
        if not paths or not args.out:
            raise ValueError("runs export needs run folders and --out FILE.zip")
        files = export_runs(paths, args.out)
        print(f"wrote {args.out}: {len(paths)} run(s), {files} files")
        return 0
    if len(paths) != 1:
        raise ValueError("runs import takes one zip file (and --into DIR for the runs folder)")
    made = import_runs(paths[0], args.into or DEFAULT_RUNS_DIR)
    print(f"imported {len(made)} run(s) into {args.into or DEFAULT_RUNS_DIR}: {', '.join(path.name for path in made)}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    """Delete the runs not changed for --prune-older-than days: every student's, or --owner's."""
    from explorer.train.storage import prunable, prune

    owner = {"students": "", "shared": None}.get(args.owner, args.owner)
    runs = prunable(args.dir, args.prune_older_than, owner)
    freed = prune(runs)
    for run in runs:
        print(f"deleted {run.path}")
    print(f"deleted {len(runs)} run(s) older than {args.prune_older_than} days ({args.owner}'s), "
          f"{freed / 2**20:,.1f} MB freed")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from explorer.report import write_report

    written = write_report(args.run_dirs, args.out, png=not args.no_png)
    if args.json:
        print(json.dumps({"files": [str(path) for path in written]}))
    else:
        for path in written:
            print(path)
    return 0


def command_gradcam(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from explorer.analysis.gradcam import (
        explain,
        overlay,
        pretrained_classifier,
        run_classifier,
        save_png,
        state_dict_classifier,
    )
    from explorer.data.images import load_image_with_notes
    from explorer.models import resolve

    if bool(args.run_dir) == bool(args.model):
        raise ValueError("give either --run DIR or --model NAME (with --weights PATH for your own weights)")
    image, notes = load_image_with_notes(args.image)
    if args.run_dir:
        classifier = run_classifier(_run_dirs(args, [args.run_dir])[0])
    elif args.weights:
        classifier = state_dict_classifier(args.model, args.weights)
    elif resolve(args.model).family == "imagenet":
        show = sys.stderr.isatty() and not args.json
        classifier = pretrained_classifier(args.model, progress=_bytes_progress(f"{args.model} weights") if show else None)
    else:
        raise ValueError(f"{args.model} has no pretrained weights: give --weights PATH (a state_dict file) or --run DIR")
    result = explain(classifier, image, layers=args.layer, target=args.target)[0]
    out = Path(args.out)
    save_png(overlay(image, result.heatmap, args.opacity, args.colormap), out)
    heatmap_path = out.with_suffix(".npy")
    np.save(heatmap_path, result.heatmap)
    record = result.to_json(heatmap_path)
    record["notes"] = notes + record["notes"]
    record["model"] = classifier.title
    if args.json:
        print(json.dumps(record))
        return 0
    for label, prob in result.predictions:
        print(f"{prob:7.2%}  {label}")
    peak = f"peak at row {result.peak[0]}, column {result.peak[1]}" if result.peak else "no positive evidence"
    print(f"Grad-CAM of {result.target_label!r} at {result.layer}: {peak}; wrote {out} and {heatmap_path}")
    for note in record["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0


def command_playground(args: argparse.Namespace) -> int:
    from explorer.playground import settings_from_args, train_once

    settings = settings_from_args(args)
    try:
        steps = int(args.steps)
    except ValueError:
        raise ValueError(f"--steps must be a whole number, got {args.steps!r}") from None
    (kind, result), = train_once(settings, steps).items()
    if args.json:
        print(json.dumps({"net": kind, **result}))
        return 0
    print(f"{kind} net, {settings.depth} hidden layers of {settings.width} on {settings.dataset}, {result['step']:,} "
          f"steps: training loss {result['train_loss']:.4f} (accuracy {result['train_accuracy']:.1%}), test loss "
          f"{result['test_loss']:.4f} (accuracy {result['test_accuracy']:.1%}); {result['steps_per_sec']:,.0f} steps/s"
          + ("; diverged: lower --lr" if result["diverged"] else ""))
    return 0


def _evaluations_progress(what: str):
    """A ``progress(done, total)`` that redraws one stderr line: WHAT: N of M evaluations."""

    def report(done: int, total: int) -> None:
        sys.stderr.write(f"\r{what}: {done:,} of {total:,} evaluations   ")
        sys.stderr.flush()

    return report


def _run_dirs(args: argparse.Namespace, given: list[str]) -> list[str]:
    """The run folders as given, with each ``pretrained:cifar-resnet{D}`` made into one on --dataset."""
    from explorer.train.pretrained import resolve_run_dir

    show = sys.stderr.isatty() and not getattr(args, "json", False)
    return [resolve_run_dir(text, args.dataset, data_dir=args.data_dir,
                            progress=_bytes_progress(f"{text} weights") if show else None) for text in given]


def _add_analysis_flags(parser: argparse.ArgumentParser) -> None:
    """What lesion, landscape and evaluate share: the nets, where they run, JSON and the test set."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a run folder, or pretrained:cifar-resnet{20,32,44,56,110,1202}")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list, one object per run, as the last line")
    _add_test_set_flags(parser)


def _add_test_set_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, metavar="D",
                        help="for pretrained:cifar-resnet{D} nets: cifar10 (the default, downloaded on first use) or "
                             "folder:DIR (CIFAR-10 images as files, train/ and test/ with its ten classes); a run "
                             "folder is evaluated on its own test set")
    parser.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding the downloaded CIFAR-10")


def _for_each_run(args: argparse.Namespace, what: str, compute) -> list[dict] | None:
    """``compute(given, run_dir, progress)`` for each run given (``pretrained:...`` made into a run
    folder), with a progress line on a terminal. With --json, prints the list as the last line and
    returns None."""
    show = sys.stderr.isatty() and not args.json
    results = []
    for given, run_dir in zip(args.run_dirs, _run_dirs(args, args.run_dirs)):
        results.append(compute(given, run_dir, _evaluations_progress(f"{what} {given}") if show else None))
        if show:
            sys.stderr.write("\n")
    if args.json:
        print(json.dumps(results, allow_nan=False))
        return None
    return results


def command_evaluate(args: argparse.Namespace) -> int:
    """Each net's test error (Table 6, live): runs trained here and pretrained:cifar-resnet{D}."""
    from explorer.analysis.evaluate import evaluate_run

    def evaluate(given: str, run_dir: str, progress) -> dict:
        return {**evaluate_run(run_dir, images=args.images, device=args.device, progress=progress), "run": given}

    results = _for_each_run(args, "evaluating", evaluate)
    if results is None:
        return 0
    for result in results:
        published = ""
        if result.get("published_error") is not None:
            published = (f"; published {result['published_error']:.2%}, paper's Table 6 "
                         f"{result['paper_error']:.2%}")
        print(f"{result['run']} ({result['model']}): test error {result['error']:.2%} on {result['images']:,} "
              f"images in {result['seconds']:.1f} s{published}")
    return 0


def command_lesion(args: argparse.Namespace) -> int:
    """Delete blocks of trained runs at test time (Veit et al., 2016) and print the errors."""
    from explorer.analysis.lesion import lesion_study

    results = _for_each_run(args, "lesion study of", lambda _, run_dir, progress: lesion_study(
        run_dir, blocks=args.blocks, images=args.images, draws=args.draws, seed=args.seed, device=args.device,
        progress=progress))
    if results is None:
        return 0
    for result in results:
        print(f"{result['label']}: weights {result['weights']}, {result['images']:,} test images, "
              f"{result['seconds']:.1f} s")
        print(f"  {'block':<12} {'kind':<14} {'error':>7} {'change':>8}")
        print(f"  {'(none)':<12} {'':<14} {result['baseline_error']:>7.1%}")
        for block in result["blocks"]:
            if block["error"] is None:
                print(f"  {block['name']:<12} {block['kind']}")
                continue
            change = (block["error"] - result["baseline_error"]) * 100
            print(f"  {block['name']:<12} {block['kind']:<14} {block['error']:>7.1%} {change:>+7.1f}pt")
        print("  random deletions (k blocks: mean error ± std over draws): " + ", ".join(
            f"{row['k']}: {row['mean_error']:.1%} ± {row['std_error']:.1%}" for row in result["random_deletions"]))
    return 0


def command_landscape(args: argparse.Namespace) -> int:
    """The test loss of trained runs along filter-normalised random directions (Li et al., 2018)."""
    from explorer.analysis.landscape import loss_landscape

    results = _for_each_run(args, "loss landscape of", lambda _, run_dir, progress: loss_landscape(
        run_dir, points=args.points, span=args.span, images=args.images, dims=args.dims, seed=args.seed,
        device=args.device, max_seconds=args.max_seconds if args.max_seconds > 0 else None, progress=progress))
    if results is None:
        return 0

    def cell(value):
        return f"{value:7.3f}" if value is not None else "    gap"

    for result in results:
        smooth = result["smoothness"]
        nonconvexity = smooth["nonconvexity"]
        print(f"{result['label']}: weights {result['weights']}, {result['images']:,} test images, "
              f"{result['dims']}-D slice, seed {result['seed']}, {result['seconds']:.1f} s; centre loss "
              f"{result['centre_loss']:.4f} (error {result['centre_error']:.1%}); non-convexity "
              f"{'-' if nonconvexity is None else f'{nonconvexity:.3f}'}, local minima {smooth['local_minima']}")
        if result["dims"] == 1:
            for coordinate, loss in zip(result["axis"], result["loss"]):
                print(f"  {coordinate:+7.3f} {cell(loss)}")
        else:
            print("  b \\ a   " + " ".join(f"{coordinate:+7.2f}" for coordinate in result["axis"]))
            for coordinate, row in zip(result["axis"], result["loss"]):
                print(f"  {coordinate:+7.2f} " + " ".join(cell(loss) for loss in row))
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

    from explorer.train.config import add_config_flags
    from explorer.train.store import DEFAULT_RUNS_DIR

    train = commands.add_parser("train", help="train a model; records go to --out")
    add_config_flags(train)
    train.add_argument("--out", help="the run folder to create (must be new or empty)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped or interrupted run from its checkpoint")
    train.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _add_backend_flags(train)
    train.set_defaults(run=command_train)

    from explorer.train.presets import PRESETS

    preset = commands.add_parser("preset", help="train a preset's models at once, as the Train page does")
    preset.add_argument("key", metavar="PRESET", help=f"one of {', '.join(PRESETS)}")
    preset.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="a GPU runs the paper's schedule, the CPU the short one")
    preset.add_argument("--dataset", help="instead of the preset's (shapes-easy on the CPU, shapes on a GPU)")
    preset.add_argument("--seed", type=int, default=0)
    from explorer.train.precision import COMPILE_CHOICES, PRECISION_CHOICES

    preset.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="bf16 autocast where the processor computes bfloat16 natively (auto), or as asked")
    preset.add_argument("--compile", default="auto", choices=COMPILE_CHOICES,
                        help="torch.compile the models (auto: on CUDA only)")
    preset.add_argument("--out", default=str(DEFAULT_RUNS_DIR), help="folder for the run folders")
    preset.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _add_backend_flags(preset)
    preset.set_defaults(run=command_preset)

    runs = commands.add_parser("runs", help="list runs with their state and final numbers; prune old ones; "
                                            "export runs as a zip, import one")
    runs.add_argument("words", nargs="*", metavar="DIR | export RUN_DIR... | import FILE.zip",
                      help=f"the folder holding run folders (default {DEFAULT_RUNS_DIR}); or export the run folders "
                           "named into --out; or import a zip of run folders into --into")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--prune-older-than", metavar="DAYS", default=None,
                      help="delete the runs (not training) unchanged for more than DAYS days")
    runs.add_argument("--owner", default="students",
                      help="whose runs --prune-older-than deletes: students (every student's, the default), shared "
                           "(the instructor's and the CLI's), or one session's key")
    runs.add_argument("--out", metavar="FILE.zip", help="with export: the zip to write")
    runs.add_argument("--into", metavar="DIR", help=f"with import: the runs folder (default {DEFAULT_RUNS_DIR})")
    runs.set_defaults(run=command_runs)

    report = commands.add_parser("report", help="write the curves, Fig. 7 and gradient-flow plots as HTML and PNG")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--out", required=True, help="folder for the figures")
    report.add_argument("--no-png", action="store_true", help="HTML only (PNG needs Chrome or Chromium)")
    report.add_argument("--json", action="store_true")
    report.set_defaults(run=command_report)

    from explorer.analysis.gradcam import COLORMAPS

    gradcam = commands.add_parser("gradcam", help="Grad-CAM heatmap of an image for a pretrained model or a run")
    gradcam.add_argument("--image", required=True, help="PNG, JPEG, WebP, BMP, GIF (first frame) or TIFF")
    gradcam.add_argument("--run", metavar="DIR", dest="run_dir",
                         help="a run trained in the app or with `train`, or pretrained:cifar-resnet{20,32,44,56,110,1202} "
                              "(the published converged CIFAR-10 nets)")
    gradcam.add_argument("--model", metavar="NAME", help="resnet18..resnet152 (torchvision's ImageNet weights) or "
                                                         "any model name with --weights")
    gradcam.add_argument("--weights", metavar="PATH", help="a state_dict file (loaded with weights_only=True)")
    gradcam.add_argument("--layer", help="a stage (layer4) or a block (layer4.2); default: the last stage")
    gradcam.add_argument("--target", help="class name or index (default: the top-1 prediction)")
    gradcam.add_argument("--out", required=True, help="the overlay PNG to write; the heatmap goes beside it as .npy")
    gradcam.add_argument("--opacity", type=float, default=0.5, help="heatmap opacity in the overlay, 0..1")
    gradcam.add_argument("--colormap", default="jet", choices=COLORMAPS)
    gradcam.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _add_test_set_flags(gradcam)
    gradcam.set_defaults(run=command_gradcam)

    from explorer.playground import add_playground_flags

    playground = commands.add_parser("playground", help="train a plain or a residual deep MLP on 2-D points, "
                                                        "as the Playground page does")
    add_playground_flags(playground)
    playground.add_argument("--steps", default="1000", help="training steps (batches) (default: 1000)")
    playground.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    playground.set_defaults(run=command_playground)

    lesion = commands.add_parser("lesion", help="delete blocks of trained runs at test time and measure the error "
                                                "(Veit et al., 2016)")
    lesion.add_argument("--blocks", type=int, default=None, metavar="K",
                        help="delete up to K random blocks at once (default: all deletable blocks)")
    lesion.add_argument("--images", type=int, default=1000, metavar="N", help="the first N test images of each run")
    lesion.add_argument("--draws", type=int, default=5, help="random sets of k blocks drawn for each k")
    lesion.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    _add_analysis_flags(lesion)
    lesion.set_defaults(run=command_lesion)

    landscape = commands.add_parser("landscape", help="test loss along filter-normalised random directions around "
                                                      "trained runs' weights (Li et al., 2018)")
    landscape.add_argument("--points", type=int, default=None, metavar="P",
                           help="points per axis (default: 41 for 1-D, 15 for 2-D)")
    landscape.add_argument("--span", type=float, default=1.0, metavar="S", help="the axis runs from -S to S")
    landscape.add_argument("--images", type=int, default=1000, metavar="N", help="the first N test images of each run")
    landscape.add_argument("--dims", type=int, default=1, choices=(1, 2), help="a 1-D slice or a 2-D grid")
    landscape.add_argument("--seed", type=int, default=0,
                           help="seed of the directions (the same for a plain and a residual net of the same depth)")
    landscape.add_argument("--max-seconds", type=float, default=600.0,
                           help="refuse when the estimate is longer (0: no limit)")
    _add_analysis_flags(landscape)
    landscape.set_defaults(run=command_landscape)

    evaluate = commands.add_parser("evaluate", help="each net's test error: runs trained here and the published "
                                                    "converged CIFAR-10 ResNets (Table 6, live)")
    evaluate.add_argument("--images", type=int, default=None, metavar="N",
                          help="the first N test images of each (default: the whole test set)")
    _add_analysis_flags(evaluate)
    evaluate.set_defaults(run=command_evaluate)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        if os.environ.get("EXPLORER_DEBUG"):
            raise
        from explorer.train.store import disk_full_message, is_disk_full

        if is_disk_full(error):  # a run's folder being made, say: the disk, not the input, is at fault
            print(f"error: {disk_full_message(error.filename or '.')}", file=sys.stderr)
            return 1
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
