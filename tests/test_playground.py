"""The residual playground: its engine, settings and URL, CLI, figures, pages, and the Concepts page."""

import json
import math
import subprocess
import sys
import threading
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from streamlit.testing.v1 import AppTest

from explorer.analysis.concepts import fig5_weights, shortcut_weights
from explorer.fields import parse_value, specs, to_text
from explorer.figures import log_ticks
from explorer.models.mlp import DeepMLP
from explorer.playground import (
    CLASS_COLOURS,
    DEFAULTS,
    LivePlayground,
    Playground,
    PlaygroundSettings,
    boundary_image,
    gradient_norms_figure,
    loss_curves_figure,
    one_thread,
    settings_from_args,
    settings_from_query,
    settings_to_query,
    summarise,
    train_once,
)
from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")
SMALL = PlaygroundSettings(depth=6, width=8, points=120)


# ---------------------------------------------------------------------------------------------
# The engine


def test_plain_and_residual_start_identical_and_see_the_same_batches():
    playground = Playground(DEFAULTS)
    plain, residual = (playground.nets[kind] for kind in ("plain", "residual"))
    plain_state, residual_state = plain.model.state_dict(), residual.model.state_dict()
    assert plain_state.keys() == residual_state.keys()
    assert all(torch.equal(plain_state[key], residual_state[key]) for key in plain_state)
    assert torch.equal(torch.randint(250, (32,), generator=plain.generator),
                       torch.randint(250, (32,), generator=residual.generator))
    # The same seed again gives the same weights; the caller's random stream is left alone.
    before = torch.random.get_rng_state()
    again = Playground(DEFAULTS).nets["plain"].model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(again[key], plain_state[key]) for key in plain_state)
    # ...and they differ only in the shortcut: the residual net's forward pass is not the plain one's.
    x = playground.splits["train"][0][:4]
    assert not torch.allclose(plain.logits(x), residual.logits(x))


def test_a_step_trains_and_the_views_have_the_right_shapes():
    playground = Playground(SMALL.replace(lr=0.01))
    views = playground.views(resolution=20)
    assert all(view.gradient_norms is None and view.steps == 0 for view in views.values())
    start = {kind: net.model.stem.weight.clone() for kind, net in playground.nets.items()}
    playground.step(30)
    views = playground.views(resolution=20)
    for kind, view in views.items():
        assert view.steps == 30 and view.history[0].step == 0 and view.history[-1].step == 30
        assert not torch.equal(playground.nets[kind].model.stem.weight, start[kind])
        assert view.history[-1].train_loss != view.history[0].train_loss
        assert view.probabilities.shape == (20, 20)
        assert np.all((view.probabilities >= 0) & (view.probabilities <= 1))
        assert len(view.gradient_norms) == SMALL.depth and all(norm >= 0 for norm in view.gradient_norms)
        assert 0 <= view.evaluation.test_accuracy <= 1 and view.steps_per_sec > 0
    axis = playground.grid_axis(20)
    assert axis[0] == -playground.extent and axis[-1] == playground.extent
    assert playground.extent >= np.abs(playground.data.x_train).max()


def test_residual_trains_where_plain_does_not_at_depth_50():
    # Measured over seeds 0-5 (and in bench/results/playground-*): after 300 steps the plain net is
    # still at chance (loss ln 2) on every seed; the residual net is below 0.47 on every one. Seed 4
    # is the residual net's slowest of those.
    for seed in (4,):
        settings = DEFAULTS.replace(seed=seed)
        plain = train_once(settings.replace(nets="plain"), 300)["plain"]
        residual = train_once(settings.replace(nets="residual"), 300)["residual"]
        assert plain["train_loss"] > 0.68 and plain["train_accuracy"] < 0.6
        assert residual["train_loss"] < 0.55 and residual["train_accuracy"] > 0.75


def test_plain_gradient_vanishes_towards_the_input_at_depth_50():
    playground = Playground(DEFAULTS)
    playground.step(1)
    plain = playground.nets["plain"].gradient_norms()
    residual = playground.nets["residual"].gradient_norms()
    assert plain[0] < 1e-10 * plain[-1]  # the first layer gets almost nothing
    assert residual[0] > 1e-3 * residual[-1]


def test_learning_rate_and_batch_size_change_live_anything_else_rebuilds():
    playground = Playground(SMALL)
    playground.step(3)
    assert playground.apply(SMALL.replace(lr=0.01, batch_size=8))
    assert playground.steps == 3 and playground.settings.batch_size == 8
    assert all(group["lr"] == 0.01 for net in playground.nets.values() for group in net.optimiser.param_groups)
    assert not playground.apply(SMALL.replace(depth=7))
    assert not playground.apply(SMALL.replace(seed=1))


def test_run_for_keeps_to_its_budget_and_the_nets_in_step():
    playground = Playground(SMALL)
    steps = playground.run_for(0.2)
    assert steps >= 1
    assert {net.steps for net in playground.nets.values()} == {steps}
    assert playground.run_for(10, max_steps=5) == 5


def test_divergence_is_caught_and_said():
    playground = Playground(DEFAULTS.replace(optimiser="sgd", lr=1.0, nets="residual", depth=30))
    playground.step(20)
    views = playground.views(resolution=10)
    assert views["residual"].diverged
    assert "diverged" in summarise(views)
    assert np.isnan(views["residual"].probabilities).all()
    data = playground.data
    image = boundary_image(views["residual"].probabilities, playground.extent, data.x_train[:0], data.y_train[:0],
                           data.x_test[:0], data.y_test[:0], size=40)
    assert (image == image[0, 0]).all()  # one even grey: no class is favoured
    go.Figure(loss_curves_figure({"residual": views["residual"].history}))  # NaN losses become gaps


def _wait_for(condition, timeout: float = 60.0, message: str = "") -> None:
    """Poll a condition (the worker is a thread; a busy machine may be slow to schedule it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message or "the condition did not come true"
        time.sleep(0.01)


def test_live_playground_trains_in_its_own_thread_and_pauses_on_the_spot():
    live = LivePlayground(SMALL, slice_seconds=0.05)
    assert live.steps == 0 and not live.running
    assert not any(thread.name == "playground" for thread in threading.enumerate())
    live.run()
    assert live.running
    _wait_for(lambda: live.snapshot().steps >= 3, message="the worker did not train")
    live.pause()  # returns at once; the worker finishes its slice in flight
    assert not live.running
    live.wait_until_settled()
    paused_at = live.playground.steps
    assert live.snapshot().steps == paused_at  # the snapshot shows the final state
    _wait_for(lambda: live._thread is None, message="the worker thread did not end when paused")
    assert live.playground.steps == paused_at
    live.run()  # and again: a paused playground resumes where it was
    _wait_for(lambda: live.snapshot().steps > paused_at)
    live.step(2)  # Step pauses first, then trains exactly two steps
    assert not live.running and live.snapshot().steps == live.playground.steps
    stepped = live.playground.steps
    live.step(2)
    assert live.playground.steps == stepped + 2
    assert {net.steps for net in live.playground.nets.values()} == {stepped + 2}  # the nets stay in step


def test_live_playground_takes_a_new_rate_while_running_and_refuses_new_nets():
    live = LivePlayground(SMALL, slice_seconds=0.05)
    live.run()
    assert live.apply(SMALL.replace(lr=0.01)) and live.settings.lr == 0.01
    assert not live.apply(SMALL.replace(depth=7))  # the caller builds a new playground
    live.close()
    _wait_for(lambda: live._thread is None)
    with pytest.raises(RuntimeError, match="closed"):
        live.run()


def test_live_playground_pauses_itself_when_nobody_watches_or_every_net_diverged():
    live = LivePlayground(SMALL, slice_seconds=0.02, idle_pause_seconds=0.3)
    live.run()
    _wait_for(lambda: not live.running, message="an unwatched playground kept training")
    assert "no page asked" in live.stopped_because
    live.run()  # Run clears the reason
    assert live.stopped_because is None
    live.pause()

    diverging = LivePlayground(DEFAULTS.replace(optimiser="sgd", lr=1.0, nets="residual", depth=30),
                               slice_seconds=0.05)
    diverging.run()
    _wait_for(lambda: not diverging.running, message="a diverged playground kept training")
    assert "diverged" in diverging.stopped_because and diverging.snapshot().views["residual"].diverged


def test_live_playground_reports_a_failure_instead_of_dying_silently(monkeypatch):
    live = LivePlayground(SMALL, slice_seconds=0.02)

    def broken(seconds):
        raise RuntimeError("out of memory (made up by the test)")

    monkeypatch.setattr(live.playground, "run_for", broken)
    live.run()
    _wait_for(lambda: not live.running)
    assert "made up by the test" in str(live.error) and live._thread is None


def test_one_thread_restores_the_thread_count_also_when_nested():
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_he_initialisation_option():
    torch.manual_seed(0)
    model = DeepMLP(depth=4, width=256, init="he")
    weight = model.blocks[0].linear.weight
    assert abs(weight.std().item() - math.sqrt(2 / 256)) < 0.005
    assert torch.count_nonzero(model.blocks[0].linear.bias) == 0
    with pytest.raises(ValueError, match="valid: pytorch, he"):
        DeepMLP(init="xavier")


# ---------------------------------------------------------------------------------------------
# Settings, URL and CLI


def test_query_parameters_round_trip_and_bad_ones_name_themselves():
    settings = DEFAULTS.replace(dataset="circles", depth=12, width=8, norm="batchnorm", lr=0.0003, nets="residual",
                                noise=0.2, seed=7)
    query = settings_to_query(settings)
    assert query["lr"] == "0.0003" and query["depth"] == "12"
    assert settings_from_query(query) == (settings, [])
    assert settings_from_query({"depth": ["3", "9"]})[0].depth == 9  # a repeated parameter: the last one

    restored, problems = settings_from_query({"depth": "deep", "width": "16", "lr": "-1", "dataset": "moons",
                                              "utm_source": "mail"})
    assert (restored.depth, restored.width, restored.lr, restored.dataset) == (50, 16, 0.001, "spiral")
    assert len(problems) == 3
    depth_problem = next(problem for problem in problems if problem.startswith("URL parameter depth"))
    assert "'deep'" in depth_problem and "1 to 300" in depth_problem and "using the default, 50" in depth_problem
    assert any("dataset" in problem and "spiral, circles, xor, gaussians" in problem for problem in problems)

    restored, problems = settings_from_query({"norm": "batchnorm", "batch_size": "1"})
    assert restored.validate() and len(problems) == 1 and "BatchNorm needs a batch" in problems[0]


@pytest.mark.parametrize("changes,reason", [
    ({"depth": 0}, "depth must be a whole number from 1 to 300"),
    ({"activation": "swish"}, "activation must be one of relu"),
    ({"noise": float("nan")}, "noise must be a number from 0 to 0.5"),
    ({"width": 2.5}, "width must be a whole number"),
])
def test_invalid_settings_fail_with_one_sentence(changes, reason):
    with pytest.raises(ValueError, match=reason):
        DEFAULTS.replace(**changes).validate()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "explorer", "playground", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_prints_the_final_numbers_as_json(capsys):
    result = _cli("--dataset", "spiral", "--depth", "50", "--width", "16", "--residual", "--steps", "40", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"train_loss", "test_loss", "train_accuracy", "test_accuracy", "steps_per_sec"} <= set(record)
    assert record["net"] == "residual" and record["step"] == 40 and record["steps_per_sec"] > 0
    # The library gives the same numbers: same seed, same weights, same batches.
    again = train_once(DEFAULTS.replace(nets="residual"), 40)["residual"]
    assert again["train_loss"] == pytest.approx(record["train_loss"], rel=1e-5)

    from explorer.cli import main

    assert main(["playground", "--depth", "3", "--width", "4", "--plain", "--norm", "batchnorm", "--steps", "5"]) == 0
    assert "plain net, 3 hidden layers of 4 on spiral, 5 steps: training loss" in capsys.readouterr().out


@pytest.mark.parametrize("args,reason", [
    (["--depth", "5", "--steps", "5"], "exactly one of --plain or --residual"),
    (["--plain", "--residual"], "exactly one of --plain or --residual"),
    (["--plain", "--norm", "layer"], "norm must be one of none, batchnorm"),
    (["--plain", "--depth", "fifty"], "depth must be a whole number"),
    (["--plain", "--steps", "many"], "--steps must be a whole number"),
    (["--plain", "--steps", "0"], "--steps must be from 1"),
])
def test_cli_bad_input_is_one_line(capsys, args, reason):
    from explorer.cli import main

    assert main(["playground", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0] and captured.out == ""


# The CLI's flags are a contract: scripts and the README call them by these names.
PLAYGROUND_FLAGS = {"--dataset", "--noise", "--points", "--train-percent", "--depth", "--width", "--activation",
                    "--norm", "--init", "--optimiser", "--lr", "--batch-size", "--seed"}


def _another_value(spec):
    """A value the field accepts that is not its default."""
    if spec.limits.choices is not None:
        return next(choice for choice in spec.limits.choices if choice != spec.default)
    candidate = spec.default + 1 if spec.kind is int else (spec.default + spec.limits.high) / 2
    return candidate if spec.limits.allows(candidate) else spec.limits.low


def _refused_value(spec) -> str:
    return "no-such-choice" if spec.limits.choices is not None else to_text(spec.limits.high + 1)


def test_every_setting_round_trips_through_text_and_refuses_what_is_out_of_range():
    for name, spec in specs(PlaygroundSettings).items():
        for value in (spec.default, _another_value(spec)):
            assert parse_value(spec, to_text(value)) == value, name
        with pytest.raises(ValueError) as refused:
            parse_value(spec, _refused_value(spec))
        message = str(refused.value)
        assert message.startswith(f"{name} must be {spec.describe()}") and "\n" not in message


def test_every_generated_flag_parses_and_refuses_with_one_line(capsys):
    from explorer.cli import build_parser, main

    flags = {spec.flag: spec for spec in specs(PlaygroundSettings).values() if spec.name != "nets"}
    assert set(flags) == PLAYGROUND_FLAGS
    unflagged = settings_from_args(build_parser().parse_args(["playground", "--residual"]))
    assert unflagged == DEFAULTS.replace(nets="residual")
    for flag, spec in flags.items():
        value = _another_value(spec)
        args = build_parser().parse_args(["playground", "--plain", flag, to_text(value)])
        assert getattr(settings_from_args(args), spec.name) == value, flag

        assert main(["playground", "--plain", flag, _refused_value(spec)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {spec.name} must be ") and captured.out == ""


def test_cli_bad_input_from_the_shell():
    result = _cli("--residual", "--depth", "0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# Figures and the Concepts page's numbers


def test_figures_are_valid_plotly():
    playground = Playground(SMALL)
    playground.step(2)
    views = playground.views(resolution=12)
    for figure in (
        loss_curves_figure({kind: view.history for kind, view in views.items()}),
        gradient_norms_figure({kind: view.gradient_norms for kind, view in views.items()}),
        gradient_norms_figure({"plain": None}),
    ):
        go.Figure(figure)  # raises on anything plotly does not accept
    assert log_ticks([1e-23, 0.5]) == [10.0**power for power in range(-21, 1, 3)]  # a few decades, not 24 labels
    assert log_ticks([0.3, 0.9]) == [0.1, 0.2, 0.5, 1, 2, 5] and log_ticks([]) is None
    curves = loss_curves_figure({kind: view.history for kind, view in views.items()})
    assert [trace["name"] for trace in curves["data"]] == ["Plain train", "Plain test", "Residual train",
                                                           "Residual test"]


def test_boundary_image_puts_each_class_where_it_is():
    # Gaussians: class 0 around (-0.5, -0.5), class 1 around (0.5, 0.5). A net that has learnt them
    # must colour the lower left towards class 0 (orange) and the upper right towards class 1 (blue).
    playground = Playground(PlaygroundSettings(dataset="gaussians", depth=2, width=8, nets="plain", lr=0.01))
    playground.step(150)
    view = playground.views(resolution=30)["plain"]
    assert view.evaluation.train_accuracy > 0.95
    size, extent = 100, playground.extent
    image = boundary_image(view.probabilities, extent, playground.data.x_train[:0], playground.data.y_train[:0],
                           playground.data.x_test[:0], playground.data.y_test[:0], size=size).astype(int)

    def pixel(x, y):  # image rows run downwards
        return image[round((extent - y) / (2 * extent) * (size - 1)), round((x + extent) / (2 * extent) * (size - 1))]

    orange, blue = pixel(-0.5, -0.5), pixel(0.5, 0.5)
    assert orange[0] > orange[2] and blue[2] > blue[0]  # more red than blue, and the other way round
    with_points = boundary_image(view.probabilities, extent, np.array([[0.0, 0.0]], dtype=np.float32),
                                 np.array([1]), np.zeros((0, 2), np.float32), np.zeros(0, int), size=size)
    centre = with_points[size // 2, size // 2]
    assert tuple(centre) == tuple(int(CLASS_COLOURS[1][i:i + 2], 16) for i in (1, 3, 5))


def test_concepts_counts_match_the_papers_arithmetic():
    # Fig. 5: two 3x3 convs on 64 channels against 1x1 (256->64), 3x3 (64), 1x1 (64->256).
    assert fig5_weights() == {"basic": 2 * 3 * 3 * 64 * 64, "bottleneck": 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256}
    assert shortcut_weights(64, 128) == {"A": {"grows": 0, "same": 0}, "B": {"grows": 64 * 128, "same": 0},
                                         "C": {"grows": 64 * 128, "same": 128 * 128}}


# ---------------------------------------------------------------------------------------------
# The pages under AppTest


def _open(page: str, query: dict | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    for key, value in (query or {}).items():
        app.query_params[key] = value
    app.run()
    app.switch_page(str(ROOT / "pages" / page))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _status(app: AppTest) -> str:
    return next(m.value for m in app.markdown if m.value.startswith("**Step"))


def test_playground_page_restores_the_url_and_steps():
    app = _open("playground.py", {"dataset": "circles", "depth": "12", "width": "8", "lr": "0.003", "nets": "both",
                                  "width_typo": "1", "seed": "x"})
    assert app.selectbox(key="pg_dataset").value == "circles"
    assert app.slider(key="pg_depth").value == 12
    assert app.select_slider(key="pg_width").value == 8
    assert app.select_slider(key="pg_lr").value == 0.003
    assert len(app.warning) == 1 and "URL parameter seed" in app.warning[0].value
    assert app.query_params["depth"] == "12" and app.query_params["seed"] == "0"  # the URL now says the truth
    assert "Step 0" in _status(app) and len(app.get("plotly_chart")) == 2 and len(app.get("image")) == 2

    app.button(key="pg_step").click().run()
    assert not app.exception and "Step 1" in _status(app) and "paused" in _status(app)
    assert any("After 1 step," in info.value for info in app.info)

    app.button(key="pg_run").click().run()
    live = app.session_state["pg_live"]
    assert live.running and app.button(key="pg_pause").label == "Pause"
    _wait_for(lambda: live.steps > 1, message="the worker did not train")  # trained outside the script
    app.button(key="pg_pause").click().run()
    assert not live.running and app.button(key="pg_run").label == "Run"
    assert f"Step {live.steps:,}" in _status(app)  # the page shows where the nets stopped

    app.select_slider(key="pg_lr").set_value(0.01).run()  # a live change: the nets keep their steps
    assert app.session_state["pg_live"] is live and live.steps > 1 and app.query_params["lr"] == "0.01"
    assert not app.warning  # the link's problem is no longer the page's
    app.slider(key="pg_depth").set_value(5).run()  # anything else: new nets
    assert "Step 0" in _status(app) and app.query_params["depth"] == "5"
    app.button(key="pg_step").click().run()
    app.button(key="pg_reset").click().run()
    assert "Step 0" in _status(app) and not app.exception


def test_playground_page_refuses_batchnorm_with_one_point_batches():
    app = _open("playground.py", {"nets": "plain", "depth": "3"})
    app.select_slider(key="pg_batch_size").set_value(1)
    app.radio(key="pg_norm").set_value("batchnorm").run()
    assert not app.exception and "BatchNorm needs a batch of at least 2" in app.error[0].value


def test_concepts_page_draws_and_explains_the_block():
    app = _open("concepts.py")
    assert len(app.get("graphviz_chart")) == 7
    latex = " ".join(item.value for item in app.latex)
    assert r"y = F(x, \{W_i\}) + x" in latex and r"a^{[l+2]} = g\!\left(z^{[l+2]} + a^{[l]}\right)" in latex
    text = " ".join(item.value for item in app.markdown)
    assert "$H(x) = F(x) + x$" in text and "69,632" in text and "73,728" in text
    assert "Option A" in text and "Option C" in text and "bottleneck" in text.lower()
    assert any("8,192 on the block that doubles" in caption.value for caption in app.caption)


def test_a_click_dispatched_twice_is_carried_out_once():
    """Streamlit can dispatch one click's callback twice while a fragment polls (measured: 10 ms
    apart); the Playground's buttons carry the click count they were drawn with, so the second
    dispatch does nothing, and the next click still works."""

    def script():
        import streamlit as st

        from explorer.playground import PlaygroundSettings
        from explorer.ui import playground as ui

        if "pg_live" not in st.session_state:
            ui.current_playground(PlaygroundSettings(depth=3, width=4, points=60))
            ui._step_once(0)
            ui._step_once(0)  # the same click again: ignored
            ui._step_once(1)  # the next click, drawn after the first was handled
            ui._run(1)  # a stale Run (drawn before the last Step) is ignored too
        st.write(f"steps {st.session_state['pg_live'].steps}, running {st.session_state['pg_live'].running}")

    app = AppTest.from_function(script, default_timeout=60).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.markdown[0].value == "steps 2, running False"
