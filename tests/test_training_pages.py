"""The training pages under AppTest, the figure builders and the report command, on tiny runs."""

import dataclasses
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from explorer.analysis.runs import RunRecords, curve, gradient_summary
from explorer.cli import main
from explorer.figures import (
    gradient_depth_figure,
    gradient_heatmap_figure,
    gradient_split_figure,
    responses_figure,
    training_curves_figure,
)
from explorer.train.config import DataConfig, ModelConfig, OptimConfig, ProbeConfig, RunConfig
from explorer.train.presets import CLAIMS, PRESETS
from explorer.train.store import DEFAULT_RUNS_DIR, Run
from explorer.train.trainer import train
from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")


def _page(name: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page(str(ROOT / "pages" / name))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _wait_finished(run_dirs, timeout=240):
    deadline = time.time() + timeout
    while any(Run(d).status().get("state") in ("queued", "running", "paused") for d in run_dirs):
        assert time.time() < deadline, "the runs did not finish"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def trained_pair():
    """A quick pair started from the Train page, trained to the end."""
    app = _page("train.py")
    def number(label: str):
        return next(box for box in app.number_input if box.label == label)

    app.select_slider(key="train_depth").set_value(8)
    number("Steps").set_value(12)
    app.select_slider(key="train_batch").set_value(16)
    number("Training images").set_value(200)
    number("Seed").set_value(7)
    app.checkbox(key="train_augment").set_value(False)  # the CPU default; a GPU machine's is on
    app.button[0].click().run()
    assert not app.exception, [e.value for e in app.exception]
    run_dirs = app.session_state["train_group"]
    assert len(run_dirs) == 2
    assert [Run(d).config()["seed"] for d in run_dirs] == [7, 7]  # the page's seed reaches both runs
    _wait_finished(run_dirs)
    return app, run_dirs


def test_train_page_starts_a_pair_and_shows_its_records(trained_pair):
    app, run_dirs = trained_pair
    names = sorted(Run(d).config()["model"]["name"] for d in run_dirs)
    assert names == ["cifar-plain8", "cifar-resnet8"]
    assert all(Run(d).status()["state"] == "completed" for d in run_dirs)
    app.run()
    assert not app.exception
    texts = [p.proto.text for p in app.get("progress")]
    assert len(texts) == 2 and all("step 12 of 12" in text and "completed 12 steps" in text for text in texts)
    assert any(c.value.startswith("Training on **") for c in app.caption)
    assert len(app.get("plotly_chart")) >= 1
    # The pair trained without augmentation, and the curves' caption says so.
    assert [Run(d).config()["data"]["augment"] for d in run_dirs] == [False, False]
    assert any("(averaged over each logging interval; no augmentation)" in c.value for c in app.caption)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32 machine", "bf16 machine"])
def test_train_page_shows_preset_limits(monkeypatch, bf16):
    from explorer.train import presets

    monkeypatch.setattr(presets, "cpu_trains_in_bf16", lambda: bf16)
    app = _page("train.py")
    app.radio[0].set_value("fig6").run()
    preset = PRESETS["fig6"]
    # Two short lines: what it shows and what it cannot; the rest one click away.
    info = next(i.value for i in app.info if "Shows" in i.value)
    shows, cannot = preset.lines("cpu")  # the lines the record for this data lets it say
    assert info == f"**Shows:** {shows}  \n**Cannot show:** {cannot}"
    assert "long schedule" in info
    # On this CPU: the minute-long schedule, and what bench/presets.py recorded, read from its results.
    details = " ".join(m.value for m in app.expander[0].markdown)
    assert "shapes-easy at 16x16" in details and "140 steps at batch 64" in details
    recorded = preset.measured_record("shapes-easy")  # this machine's kind: bf16 or fp32
    seeds = len(recorded.data["seeds"])
    for claim, count in recorded.data["summary"]["fig6"]["claims_held_on_seeds"].items():
        assert f"{CLAIMS[claim]['text']}: on {count} of {seeds} seeds" in details
    assert recorded.source in details and ("-bf16-" in recorded.source) == bf16  # the project has both kinds
    assert ("In bfloat16" in details) == bf16 and "no record of its own kind" not in details
    # A preset takes only its data, device and seed: its schedule is its own.
    assert {box.label for box in app.number_input} == {"Seed"} and not app.select_slider
    assert app.selectbox[0].value == "shapes-easy"


def test_train_page_needs_a_model():
    app = _page("train.py")
    app.radio[0].set_value("custom").run()
    # The quick pair's depth is not a custom run's setting.
    assert [slider.label for slider in app.select_slider] == ["Batch size", "Image size"]
    app.multiselect(key="train_models").set_value([])
    app.button[0].click().run()
    assert not app.exception and "Pick at least one model" in app.error[0].value


def test_runs_page_lists_overlays_and_reports_bad_lines(trained_pair):
    _, run_dirs = trained_pair
    with open(Run(run_dirs[0]).path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 99, "spl')
    app = _page("runs.py")
    table = app.dataframe[0].value
    assert set(Run(d).id for d in run_dirs) <= set(table["id"])
    assert len(app.get("plotly_chart")) == 1
    assert any("half-written (skipped)" in c.value for c in app.caption)
    assert app.get("download_button")
    assert app.caption[0].value.startswith("Every saved run under runs/.")  # this machine's session: the instructor
    # The precision each run trained in (issue 22): a column, and why it was chosen in its configuration.
    listed = table.set_index("id").loc[[Run(d).id for d in run_dirs]]
    assert set(listed["precision"]) <= {"fp32", "bf16"} and listed["precision"].notna().all()
    reason = Run(run_dirs[0]).status()["environment"]["precision_reason"]
    assert any(reason in c.value and "Trained on" in c.value for c in app.caption)


def test_a_students_runs_page_says_whose_runs_it_lists_and_which_it_may_delete(monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR", "0")
    app = _page("runs.py")
    assert app.caption[0].value.startswith("Your runs, and the runs the instructor shares.")
    assert "you may delete your own" in app.caption[0].value and "delete or download them" not in app.caption[0].value


def test_responses_page_draws_fig7(trained_pair):
    app = _page("responses.py")
    assert len(app.get("plotly_chart")) == 2
    summary = app.dataframe[0].value
    assert len(summary) >= 2 and (summary["mean_std"] > 0).all()
    assert "closer to zero" in app.markdown[0].value
    # The latest step is the end of both runs: its records are of the weights they saved.
    assert any(c.value == "Step 12 shows the weights after 12 updates: the saved models." for c in app.caption)


def test_gradients_page_explains_what_was_measured(trained_pair):
    app = _page("gradients.py")
    text = " ".join(m.value for m in app.markdown)
    assert "unlikely to be caused by vanishing gradients" in text
    assert "What our measurements say" in text and "cifar-resnet8" in text
    assert len(app.get("plotly_chart")) == 1 + 2 + 2  # depth, a heatmap and a split per run


def test_the_live_panel_picks_up_a_resumed_run_at_once():
    config = RunConfig(model=ModelConfig(name="cifar-resnet8"), data=DataConfig(dataset="shapes", train_size=128,
                                                                                 test_size=32),
                       optim=OptimConfig(steps=4, batch_size=32),
                       probes=ProbeConfig(probe_every=0, log_every=2, eval_every=4, checkpoint_every=4), device="cpu")
    run = Run.new_in(DEFAULT_RUNS_DIR, config.to_json(), "live-resume")
    assert train(config, run).state == "completed"
    longer = config.replace(optim=OptimConfig(steps=8, batch_size=32))
    (run.path / "config.json").write_text(json.dumps(longer.to_json()))
    run.set_status("interrupted", "interrupted at step 6 when its process ended; resumes from the checkpoint at "
                   "step 4", step=6)
    app = AppTest.from_file(str(ROOT / "tests" / "live_panel_app.py"), default_timeout=120)
    app.session_state["run_dirs"] = [str(run.path)]
    app.run()
    assert "interrupted" in app.get("progress")[0].proto.text
    resume = next(button for button in app.button if button.key.startswith("continue-"))
    try:
        resume.click().run()
        assert not app.exception, [e.value for e in app.exception]
        text = app.get("progress")[0].proto.text
        assert "interrupted" not in text and ("queued" in text or "running" in text or "completed" in text), text
        assert not any(button.key.startswith("continue-") for button in app.button)
    finally:
        _wait_finished([str(run.path)])
    assert run.status()["state"] == "completed" and run.status()["step"] == 8
    run.delete()


def test_the_live_panel_offers_no_controls_on_another_sessions_run(monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_LOCAL_IS_INSTRUCTOR", "0")  # this test's session is a student's
    run = Run.new_in(DEFAULT_RUNS_DIR, RunConfig().to_json(), "not-mine")
    run.set_status("stopped", "stopped at step 4 of 8; resumable", step=4, total_steps=8, owner="another-session")
    try:
        app = AppTest.from_file(str(ROOT / "tests" / "live_panel_app.py"), default_timeout=60)
        app.session_state["run_dirs"] = [str(run.path)]
        app.run()
        assert not app.exception and not app.button
        assert any("Started in another session" in caption.value for caption in app.caption)
    finally:
        run.delete()


def test_pages_without_runs_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr("explorer.ui.jobs.all_runs", lambda who=None: [])
    for page in ("responses.py", "gradients.py"):
        app = _page(page)
        assert app.info and "No" in app.info[0].value


# --- figure builders -----------------------------------------------------------------------------

def _records():
    return RunRecords(
        run_dir="x", label="cifar-plain8",
        metrics=[{"step": 5, "split": "train", "error": 0.8, "loss": 2.0}, {"step": 10, "split": "train", "error": 0.6,
                 "loss": 1.5}, {"step": 10, "split": "test", "error": 0.7, "loss": 1.7}, {"step": 12, "split": "test"}],
        responses=[{"step": 0, "kind": "response_std", "layers": [{"name": "a", "std": 1.0}, {"name": "b", "std": 3.0}]},
                   {"step": 4, "kind": "response_std", "layers": [{"name": "a", "std": 2.0}, {"name": "b", "std": 0.5}]}],
        gradients=[{"step": 0, "kind": "grad_norm", "blocks": [
            {"name": "layer1.0", "total": 0.1, "shortcut": 0.0, "residual": 0.1},
            {"name": "layer2.0", "total": 1.0, "shortcut": 0.0, "residual": 1.0}]}],
    )


def test_curves_are_drawn_as_the_paper_draws_them():
    figure = training_curves_figure([_records()], "error")
    train, test = figure.data
    assert train.line.dash == "dash" and test.line.dash == "solid" and train.line.color == test.line.color
    assert list(train.x) == [5, 10] and list(train.y) == pytest.approx([80, 60])
    assert list(test.x) == [10] and list(test.y) == pytest.approx([70])  # the record without "error" is skipped
    assert train.mode == "lines" and test.mode == "markers"  # a single point is a dot, not an invisible line


def test_long_curves_keep_their_band_in_few_points():
    metrics = [{"step": step, "split": "train", "error": 0.5 + 0.4 * ((step * 7919) % 13 - 6) / 6}
               for step in range(1, 64_001)]
    metrics[40_000]["error"] = 3.0  # one spike
    records = RunRecords(run_dir="x", label="long", metrics=metrics)
    steps, values = curve(records, "train", max_points=2_000)
    assert len(steps) <= 2_000 and steps == sorted(steps) and (steps[0], steps[-1]) == (1, 64_000)
    assert values[-1] == metrics[-1]["error"]
    assert max(values) == 3.0 and min(values) == pytest.approx(0.1) and steps[values.index(3.0)] == 40_001
    assert len(training_curves_figure([records]).data[0].x) <= 2_000
    assert curve(records, "train") == ([m["step"] for m in metrics], [m["error"] for m in metrics])


def test_response_and_gradient_figures():
    records = _records()
    latest = responses_figure([records]).data[0]
    assert list(latest.y) == [2.0, 0.5] and "step 4" in latest.name
    assert list(responses_figure([records], step=0, sort=True).data[0].y) == [3.0, 1.0]
    assert list(gradient_depth_figure([records]).data[0].y) == [0.1, 1.0]
    assert [list(row) for row in gradient_heatmap_figure(records).data[0].z] == [[-1.0, 0.0]]
    # A plain net has no shortcut: one bar per block, labelled so, not an empty "shortcut" series.
    [plain] = gradient_split_figure(records).data
    assert "plain net has no shortcut" in plain.name and list(plain.y) == [0.1, 1.0]
    summary = gradient_summary(records)
    assert summary["first_over_last"] == pytest.approx(0.1) and summary["shortcut_over_branch"] is None
    residual = dataclasses.replace(records, model="cifar-resnet8", gradients=[
        {"step": 0, "kind": "grad_norm", "blocks": [{"name": "a", "total": 1e3, "shortcut": 1e3, "residual": 5.0}]},
        {"step": 10, "kind": "grad_norm", "blocks": [{"name": "a", "total": 1.0, "shortcut": 3.0, "residual": 1.0},
                                                      {"name": "b", "total": 0.1, "shortcut": 0.2, "residual": 0.1}]}])
    assert [t.name for t in gradient_split_figure(residual).data] == ["through the shortcut", "through the residual branch"]
    assert gradient_summary(residual)["shortcut_over_branch"] == pytest.approx(2.5)  # the median of 3 and 2
    heatmap = gradient_heatmap_figure(residual).data[0]
    assert (heatmap.zmin, heatmap.zmax) == pytest.approx((-1.0, 0.0))  # step 0's 10^3 does not stretch the scale


def test_report_writes_html_and_png(trained_pair, tmp_path, capsys):
    _, run_dirs = trained_pair
    assert main(["report", *run_dirs, "--out", str(tmp_path / "report"), "--json"]) == 0
    files = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"]
    names = {p.rsplit("/", 1)[-1] for p in files}
    assert {"curves-error.html", "curves-error.png", "responses.png", "responses-sorted.html",
            "gradient-depth.png"} <= names
    assert sum(name.startswith("gradient-heatmap-") for name in names) == 4  # two runs, html and png
    png = (tmp_path / "report" / "curves-error.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_a_start_click_dispatched_twice_starts_one_group():
    """A doubled dispatch of Start's callback (seen with the Playground's buttons on Streamlit 1.67)
    must not train every net twice; the next click starts the next group."""

    def script():
        import streamlit as st

        from explorer.ui import train_form

        from explorer.train.execution import ThreadBackend

        class RecordingManager:
            groups = []
            backend = ThreadBackend()  # devices: this machine's

            def submit_group(self, configs, group, owner=None, _=None):
                self.groups.append([config.model.name for config in configs])
                return []

        manager = RecordingManager()
        shared_manager = train_form.shared_manager
        train_form.shared_manager = lambda: manager  # put back below: AppTest runs this in the test's process
        try:
            state = st.session_state
            state.update(train_dataset="shapes-easy", train_device="cpu", train_seed=3, train_depth=8,
                         train_steps=20, train_batch=16, train_lr=0.02, train_images=200, train_image_size=16,
                         train_augment=False)
            train_form._start("quick", 0)
            train_form._start("quick", 0)  # the same click again: ignored
            train_form._start("fig1", 1)  # the next click, drawn after the first was handled
            train_form._start("quick", 1)  # a stale click is ignored too
        finally:
            train_form.shared_manager = shared_manager
        st.write(repr(manager.groups))

    app = AppTest.from_function(script, default_timeout=60).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.markdown[0].value == repr([["cifar-plain8", "cifar-resnet8"], ["cifar-plain20", "cifar-plain56"]])


def test_the_train_page_offers_the_devices_of_where_runs_train(monkeypatch, tmp_path):
    """On a Ray cluster with a GPU the page offers CUDA and the GPU schedule, although the app's own
    machine (this one, in CI) has none."""
    from explorer.train.jobs import JobManager
    from explorer.ui import jobs
    from tests.test_execution import HeldBackend

    class GpuCluster(HeldBackend):
        checks_fit_here = False

        def training_device(self, choice):
            if choice not in ("auto", "cpu", "cuda"):
                raise ValueError(f"device {choice!r} is not one a Ray cluster offers")
            return "cpu" if choice == "cpu" else "cuda"

        def describe_where(self, device_type):
            return f"the test cluster's {device_type}"

    backend = GpuCluster()
    manager = JobManager(tmp_path, max_concurrent=4, backend=backend)
    monkeypatch.setattr(jobs, "_shared_manager", lambda: manager)
    app = _page("train.py")
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="train_device").options == ["auto", "cpu", "cuda"]
    assert any("Training on **the test cluster's cuda**" in caption.value for caption in app.caption)
    assert app.radio[0].options[1] == PRESETS["fig1"].title_on("cuda")
    next(button for button in app.button if button.label == "Start").click().run()  # the quick pair, on its GPU
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert len(app.session_state["train_group"]) == 2
    assert [handle.spec.checked for handle in backend.started] == [False, False]  # the node checks the fit
    assert {handle.spec.config["device"] for handle in backend.started} == {"cuda"}
    manager.shutdown()


def test_the_curves_say_whether_their_training_batches_were_augmented():
    from explorer.analysis.runs import RunRecords, augmentation_note

    def runs(*augments):
        return [RunRecords(run_dir=str(i), label=f"net{i}", augment=augment) for i, augment in enumerate(augments)]

    assert augmentation_note(runs(True, True)) == "on augmented batches: random crop and flip"
    assert augmentation_note(runs(False)) == "no augmentation"
    assert augmentation_note(runs(False, True)) == "augmented batches for net1 only"
    assert augmentation_note(runs(None)) == "augmentation as each run was set"
