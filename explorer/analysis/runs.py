"""Reading run records into the shapes the figures need; shared by the app, the CLI and notebooks."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

from explorer.i18n import Translate, untranslated
from explorer.models import resolve
from explorer.train.store import Run


@dataclass
class RunRecords:
    """Everything a figure needs from one run, read once."""

    run_dir: str
    label: str
    metrics: list[dict] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)  # probe records of kind response_std, by step
    gradients: list[dict] = field(default_factory=list)  # probe records of kind grad_norm, by step
    problems: list[str] = field(default_factory=list)  # lines skipped as corrupt or half-written
    status: dict = field(default_factory=dict)
    model: str = ""  # the registry name from config.json ("" when the config cannot be read)
    augment: bool | None = None  # whether its training batches were augmented (None: not known)

    @property
    def residual(self) -> bool | None:
        """Whether the model has shortcuts, from its registry name; None for an unknown name."""
        return has_shortcuts(self.model)

    @property
    def probe_steps(self) -> list[int]:
        return [record["step"] for record in self.responses]


def has_shortcuts(model_name) -> bool | None:
    """Whether the registry's ``model_name`` is a residual net; None for an unknown name."""
    try:
        return bool(resolve(str(model_name)).fixed.get("residual", False))
    except ValueError:
        return None


def augmentation_note(records: list[RunRecords], _: Translate = untranslated) -> str:
    """Whether the training curves of these runs were measured on augmented batches, as each was
    trained; ``_``: the page's translation."""
    kinds = {record.augment for record in records}
    if kinds == {True}:
        return _("on augmented batches: random crop and flip")
    if kinds == {False}:
        return _("no augmentation")
    with_it = [record.label for record in records if record.augment]
    if with_it:
        return _("augmented batches for {runs} only").format(runs=", ".join(with_it))
    return _("augmentation as each run was set")


def weights_at(records: list[RunRecords], step: int, _: Translate = untranslated) -> str:
    """Which weights a probe record at ``step`` describes, in a sentence for the pages.

    The trainer probes step s before its update, so a record at step s is of the weights after s
    updates; at a completed run's last step it is of the weights the run saved."""
    saved = [r.label for r in records if r.status.get("state") == "completed" and r.status.get("step") == step]
    what = _("the initial weights") if step == 0 else _("the weights after {steps:,} updates").format(steps=step)
    if saved:
        what = (_("{weights}: the saved model of {runs}").format(weights=what, runs=", ".join(saved))
                if len(saved) < len(records) else _("{weights}: the saved models").format(weights=what))
    return _("Step {step:,} shows {weights}.").format(step=step, weights=what)


def _model_section(config) -> dict:
    section = config.get("model") if isinstance(config, dict) else None
    return section if isinstance(section, dict) else {}


def run_label(run: Run, config: dict | None = None, _: Translate = untranslated) -> str:
    """``config``: the run's config.json when the caller has read it already; ``_``: the page's
    translation (of a published net's note)."""
    config = run.config() if config is None else config
    model = _model_section(config)
    name = model.get("name", run.id)
    if isinstance(config, dict) and isinstance(config.get("published"), dict):  # explorer/train/pretrained.py
        return _("{name} · converged (published weights)").format(name=name)
    shortcut = model.get("shortcut")
    # Folders the app names end in 4 random hex digits, enough to tell runs apart; others keep their name.
    tag = run.id[-4:] if re.fullmatch(r"\d{8}-\d{6}-.+-[0-9a-f]{4}", run.id) else run.id
    return f"{name}" + (f" ({shortcut})" if shortcut else "") + f" · {tag}"


def warm_runs(runs_dir, stop=None) -> int:
    """Read every run under ``runs_dir`` so that their records are in the reader's cache before a
    page asks (run it in a background thread at server start: a 50 MB metrics file takes about 2 s
    to parse the first time, 0.01 s after). Oldest first: the cache drops the least recently read
    files first when it is full, so the newest runs are the ones kept. ``stop``, a threading.Event,
    ends it between two runs. Returns how many runs it read."""
    from explorer.train.store import list_runs

    read = 0
    for run in sorted(list_runs(runs_dir), key=lambda run: run.id):
        if stop is not None and stop.is_set():
            break
        if run.exists():
            read_run(run)
            read += 1
    return read


def read_run(run: Run | str, label: str | None = None) -> RunRecords:
    """A run's records; unreadable lines are skipped and listed in ``problems``, never raised."""
    run = run if isinstance(run, Run) else Run(run)
    metrics, probes = run.metrics(), run.probes()
    config = run.config()
    model = _model_section(config).get("name", "")
    data = config.get("data") if isinstance(config, dict) else None
    # A config written before the setting existed trained with augmentation (DataConfig's default).
    augment = data.get("augment", True) if isinstance(data, dict) else None
    records = RunRecords(run_dir=str(run.path), label=label or run_label(run, config), metrics=metrics.records,
                         problems=metrics.problems + probes.problems, status=run.status(),
                         model=model if isinstance(model, str) else "",
                         augment=augment if isinstance(augment, bool) else None)
    for record in probes.records:
        if record.get("kind") == "response_std" and isinstance(record.get("layers"), list):
            records.responses.append(record)
        elif record.get("kind") == "grad_norm" and isinstance(record.get("blocks"), list):
            records.gradients.append(record)
    records.responses.sort(key=lambda record: record.get("step", 0))
    records.gradients.sort(key=lambda record: record.get("step", 0))
    return records


def at_step(records: list[dict], step: int | None) -> dict | None:
    """The last record at or before ``step`` (the latest when None)."""
    if not records:
        return None
    if step is None:
        return records[-1]
    earlier = [record for record in records if record.get("step", 0) <= step]
    return earlier[-1] if earlier else records[0]


def curve(records: RunRecords, split: str, key: str = "error",
          max_points: int | None = None) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` in the ``split`` records.

    ``max_points``: a longer curve keeps its first and last points, and the points between are cut
    into runs of consecutive points that each give their lowest and highest, in step order: the
    band a noisy curve draws, its spikes and its end look the same, and a chart of 64k logged steps
    stays quick to build and to send.
    """
    points = [(m["step"], m[key]) for m in records.metrics
              if m.get("split") == split and isinstance(m.get(key), (int, float)) and isinstance(m.get("step"), int)]
    if max_points is not None and len(points) > max(max_points, 4):
        points = [points[0], *_envelope(points[1:-1], (max_points - 2) // 2), points[-1]]
    return [step for step, _value in points], [value for _step, value in points]


def _envelope(points: list[tuple[int, float]], buckets: int) -> list[tuple[int, float]]:
    kept = []
    for index in range(buckets):
        bucket = points[index * len(points) // buckets:(index + 1) * len(points) // buckets]
        low = min(bucket, key=lambda point: point[1])
        high = max(bucket, key=lambda point: point[1])
        kept.extend(sorted({low, high}))
    return kept


def gradient_matrix(records: RunRecords, part: str = "total") -> tuple[list[int], list[str], list[list[float]]]:
    """(steps, block names, log10 norms [step][block]) for a heatmap."""
    if not records.gradients:
        return [], [], []
    names = [block["name"] for block in records.gradients[-1]["blocks"]]
    steps, rows = [], []
    for record in records.gradients:
        values = {block["name"]: block.get(part) for block in record["blocks"]}
        steps.append(record["step"])
        rows.append([math.log10(values[name]) if isinstance(values.get(name), (int, float)) and values[name] > 0
                     else None for name in names])
    return steps, names, rows


def metrics_table(runs: list[RunRecords]) -> list[dict]:
    """Every metrics record of these runs, with the run's label and folder, for a CSV file."""
    return [{"run": records.label, "run_dir": records.run_dir, **metric} for records in runs for metric in records.metrics]


def response_summary(runs: list[RunRecords], step: int | None = None, _: Translate = untranslated) -> list[dict]:
    """Per run: the mean std of its layer responses at ``step``, and whether it is residual."""
    rows = []
    for records in runs:
        snapshot = at_step(records.responses, step)
        if snapshot is None:
            continue
        values = [layer["std"] for layer in snapshot["layers"] if isinstance(layer.get("std"), (int, float))]
        if values:
            rows.append({"run": records.label, "step": snapshot["step"],
                         "at": snapshot.get("when") or _("step {step}").format(step=snapshot["step"]),
                         "layers": len(values), "mean_std": sum(values) / len(values), "residual": records.residual,
                         "model": records.model})
    return rows


def gradient_summary(records: RunRecords, step: int | None = None) -> dict | None:
    """How the gradient norm changes from the last block to the first, and how the shortcut's part
    compares with the branch's.

    ``first_over_last``: gradient norm at the first block's input over that at the last block's
    input; far below 1 would be a vanishing gradient. ``shortcut_over_branch``: the median, over
    blocks, of the norm of the gradient through the shortcut over the norm of the gradient through
    the residual branch; None for a plain net. A ratio of norms, not a share: the two parts are
    vectors that partly cancel (at initialisation they are nearly orthogonal), so their norms do
    not add up to the total's.
    """
    snapshot = at_step(records.gradients, step)
    if snapshot is None or not snapshot["blocks"]:
        return None
    blocks = snapshot["blocks"]
    first, last = blocks[0]["total"], blocks[-1]["total"]
    ratios = [block["shortcut"] / block["residual"] for block in blocks if block["shortcut"] > 0 and block["residual"] > 0]
    return {"run": records.label, "step": snapshot["step"], "first": first, "last": last,
            "first_over_last": first / last if last > 0 else float("inf"),
            "shortcut_over_branch": statistics.median(ratios) if ratios else None}


def converged_responses(result: dict, _: Translate = untranslated) -> RunRecords:
    """A published net's measured layer responses (explorer.analysis.evaluate.layer_responses) as
    records the Fig. 7 figures draw beside the runs' probes."""
    return RunRecords(run_dir=result["run_dir"], label=result["label"], model=result["model"],
                      responses=[{"step": 0, "when": _("final weights"), "layers": result["layers"]}])


def responses_reading(summary: list[dict], _: Translate = untranslated) -> list[str]:
    """What Fig. 7's numbers here say, against the paper's reading: a ResNet's responses against its
    plain twin's of the same depth, and deeper ResNets' against shallower ones'. ``summary``: rows
    of ``response_summary`` with the model's registry name (``model``). Numbers only from it."""
    lines = []
    by_depth: dict[int, dict[bool, dict]] = {}
    for row in summary:
        spec = resolve(row["model"]) if row.get("model") else None
        depth = spec.fixed.get("depth") if spec else None
        if depth and row["residual"] is not None:
            by_depth.setdefault(depth, {})[row["residual"]] = row
    for depth, pair in sorted(by_depth.items()):
        if len(pair) == 2:
            residual, plain = pair[True], pair[False]
            smaller = residual["mean_std"] < plain["mean_std"]
            lines.append(_("At depth {depth}, {resnet}'s mean response std is {resnet_std:.3f} against {plain}'s "
                           "{plain_std:.3f}: {verdict}").format(
                depth=depth, resnet=residual["run"], resnet_std=residual["mean_std"], plain=plain["run"],
                plain_std=plain["mean_std"],
                verdict=_("smaller, as the paper reads Fig. 7.") if smaller else
                _("not smaller, unlike the paper's reading of Fig. 7.")))
    resnets = sorted(((depth, pair[True]) for depth, pair in by_depth.items() if True in pair), key=lambda item: item[0])
    if len(resnets) >= 2:
        values = ", ".join(f"ResNet-{depth} {row['mean_std']:.3f}" for depth, row in resnets)
        shrinking = all(later[1]["mean_std"] < earlier[1]["mean_std"] for earlier, later in zip(resnets, resnets[1:]))
        lines.append(_("Mean response std of the ResNets by depth: {values}: {verdict}").format(
            values=values,
            verdict=_("each deeper one smaller, as the paper reads it (each layer modifies the signal less).")
            if shrinking else _("not smaller with each step in depth, unlike the paper's reading.")))
    return lines
