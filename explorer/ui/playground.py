"""The playground's widgets, its URL and its live panel (explorer/playground/ does the work).

Training happens inside the live fragment, a slice of ``TRAIN_SLICE_SECONDS`` per redraw, and only
while the student has pressed Run: closing the tab stops it, as in the TensorFlow Playground. These
are small nets; a run that must outlive the page belongs on the Train page's background jobs.
"""

from __future__ import annotations

import time

import streamlit as st

from explorer.fields import specs
from explorer.playground import (
    Playground,
    PlaygroundSettings,
    boundary_image,
    gradient_norms_figure,
    loss_curves_figure,
    settings_from_query,
    settings_to_query,
    summarise,
)
from explorer.ui.feedback import explain_errors

TICK_SECONDS = 0.1  # how often a running panel asks to be redrawn; each redraw then trains a slice
TRAIN_SLICE_SECONDS = 0.12  # training per redraw, for all nets together
MIN_STEPS_FOR_SPEED = 50  # the first steps carry one-off costs; a rate from them would mislead
RATE_WINDOW = 10  # redraws over which the update rate is measured
LR_CHOICES = (0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BATCH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WIDTH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LABELS = {
    "nets": {"both": "Plain and residual, side by side", "plain": "Plain only", "residual": "Residual only"},
    "norm": {"none": "none", "batchnorm": "BatchNorm"},
    "init": {"pytorch": "PyTorch default", "he": "He (Kaiming normal)"},
    "optimiser": {"adam": "Adam", "sgd": "SGD, momentum 0.9"},
}


# The widgets take their ranges, choices and help from the settings' fields, as the URL and the CLI do.
SPECS = specs(PlaygroundSettings)


def _key(name: str) -> str:
    return f"pg_{name}"


def _help(name: str) -> str:
    return SPECS[name].help


def _choices(name: str) -> list:
    return list(SPECS[name].limits.choices)


def _range(name: str) -> tuple:
    """The lowest and the highest value a setting allows, as the widget's bounds."""
    return SPECS[name].limits.low, SPECS[name].limits.high


def _with(choices: tuple, value) -> list:
    """The usual choices plus the current value (a shared link may carry any valid one)."""
    return sorted({*choices, value})


def playground_settings() -> PlaygroundSettings:
    """The settings widgets in the sidebar, started from the URL on a session's first visit; the URL
    is rewritten to match them on every run, so the address bar always links to this setup."""
    state = st.session_state
    if "pg_settings" not in state:
        state["pg_settings"], state["pg_url_problems"] = settings_from_query(st.query_params.to_dict())
        state["pg_url_settings"] = state["pg_settings"]
    saved = state["pg_settings"]
    for name in SPECS:  # widgets forget their values when the page is left; restore them
        if _key(name) not in state:
            state[_key(name)] = getattr(saved, name)

    with st.sidebar:
        st.subheader("Data")
        st.selectbox("Data set", _choices("dataset"), key=_key("dataset"), help=_help("dataset"))
        st.slider("Noise", *_range("noise"), step=0.01, key=_key("noise"), help=_help("noise"))
        columns = st.columns(2)
        columns[0].number_input("Points", *_range("points"), step=50, key=_key("points"), help=_help("points"))
        columns[1].slider("Training %", *_range("train_percent"), step=5, key=_key("train_percent"),
                          help=_help("train_percent"))
        st.subheader("Network")
        st.radio("Nets", _choices("nets"), format_func=LABELS["nets"].get, key=_key("nets"))
        st.slider("Depth (hidden layers)", *_range("depth"), key=_key("depth"), help=_help("depth"))
        st.select_slider("Width", _with(WIDTH_CHOICES, state[_key("width")]), key=_key("width"),
                         help=_help("width"))
        columns = st.columns(2)
        columns[0].selectbox("Activation g", _choices("activation"), key=_key("activation"))
        columns[1].radio("Normalisation", _choices("norm"), format_func=LABELS["norm"].get, key=_key("norm"),
                         help=_help("norm"))
        st.selectbox("Initial weights", _choices("init"), format_func=LABELS["init"].get, key=_key("init"),
                     help=_help("init"))
        st.subheader("Training")
        st.radio("Optimiser", _choices("optimiser"), format_func=LABELS["optimiser"].get, key=_key("optimiser"),
                 horizontal=True)
        st.select_slider("Learning rate", _with(LR_CHOICES, state[_key("lr")]), format_func=lambda lr: f"{lr:g}",
                         key=_key("lr"))
        st.select_slider("Batch size", _with(BATCH_CHOICES, state[_key("batch_size")]), key=_key("batch_size"))
        st.number_input("Seed", *_range("seed"), key=_key("seed"), help=_help("seed"))

    settings = PlaygroundSettings(**{name: state[_key(name)] for name in SPECS})
    state["pg_settings"] = settings
    # Only the settings' own parameters: others in the address (the instructor's token) stay.
    for name, text in settings_to_query(settings).items():
        if st.query_params.get(name) != text:
            st.query_params[name] = text
    if settings == state.get("pg_url_settings"):  # until the student changes a setting
        for problem in state.get("pg_url_problems", []):
            st.warning(problem, icon=":material/link_off:")
    return settings


def current_playground(settings: PlaygroundSettings) -> Playground:
    """The session's playground; new nets when a setting other than learning rate or batch size changed."""
    state = st.session_state
    playground = state.get("pg_playground")
    with explain_errors("Cannot build these nets"):
        settings.validate()
        if playground is None or not playground.apply(settings):
            playground = Playground(settings)
            state["pg_playground"] = playground
            state["pg_ticks"] = []
    return playground


def _toggle_running() -> None:
    st.session_state["pg_running"] = not st.session_state.get("pg_running", False)
    st.session_state["pg_ticks"] = []


def _step_once() -> None:
    st.session_state["pg_running"] = False
    playground = st.session_state.get("pg_playground")
    if playground is not None:
        playground.step(1)


def _reset() -> None:
    st.session_state["pg_running"] = False
    st.session_state.pop("pg_playground", None)


def controls() -> bool:
    """Run or Pause, Step and Reset, as in the TensorFlow Playground; returns whether it is running."""
    running = st.session_state.get("pg_running", False)
    columns = st.columns([1, 1, 1, 5])
    columns[0].button("Pause" if running else "Run", icon=":material/pause:" if running else ":material/play_arrow:",
                      type="primary", on_click=_toggle_running, key="pg_run", width="stretch")
    columns[1].button("Step", icon=":material/skip_next:", on_click=_step_once, key="pg_step", width="stretch",
                      help="Pause and train one batch")
    columns[2].button("Reset", icon=":material/restart_alt:", on_click=_reset, key="pg_reset", width="stretch",
                      help="New nets from the same seed: the same starting weights again")
    columns[3].caption("The address bar holds every setting: copy it to share this exact setup.")
    return running


def live_panel(running: bool) -> None:
    """Boundaries, curves and gradient norms; while running, trains a slice and redraws several times a second."""
    st.fragment(_panel, run_every=TICK_SECONDS if running else None)()


def _panel() -> None:
    state = st.session_state
    playground: Playground = state["pg_playground"]
    running = state.get("pg_running", False)
    views = playground.views()
    ticks = state.setdefault("pg_ticks", [])
    if running:
        ticks.append(time.perf_counter())
        del ticks[:-RATE_WINDOW]

    status = [f"**Step {playground.steps:,}**"]
    speeds = [view.steps_per_sec for view in views.values() if view.steps_per_sec]
    if speeds and playground.steps >= MIN_STEPS_FOR_SPEED:
        status.append(f"training {min(speeds):,.0f} steps/s per net")
    if running and len(ticks) >= 2:
        status.append(f"redrawn {(len(ticks) - 1) / (ticks[-1] - ticks[0]):.1f} times/s")
    status.append("running" if running else "paused")
    st.markdown(" · ".join(status))

    data, settings = playground.data, playground.settings
    columns = st.columns(max(2, len(views)))
    for column, (kind, view) in zip(columns, views.items()):
        with column:
            shortcut = "with shortcuts" if kind == "residual" else "no shortcuts"
            st.markdown(f"**{kind.capitalize()} net**: {settings.depth} hidden layers of {settings.width}, {shortcut}")
            st.image(boundary_image(view.probabilities, playground.extent, data.x_train, data.y_train,
                                    data.x_test, data.y_test), width="stretch")
            evaluation = view.evaluation
            st.caption(f"Loss: training {evaluation.train_loss:.3f}, test {evaluation.test_loss:.3f}. "
                       f"Accuracy: training {evaluation.train_accuracy:.1%}, test {evaluation.test_accuracy:.1%}.")
    st.caption(f"Background: the net's probability of {data.classes[1]!r} (blue) against {data.classes[0]!r} "
               f"(orange) over [-{playground.extent:g}, {playground.extent:g}]². Points: their true class; white rim: "
               "training points, black rim: test points.")
    st.info(summarise(views), icon=":material/monitoring:")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(loss_curves_figure({kind: view.history for kind, view in views.items()}),
                        key="pg_losses", width="stretch")
        st.caption("Dashed: loss on the training points; solid: on the test points (both on the whole set, "
                   "with BatchNorm in test mode).")
    with right:
        st.plotly_chart(gradient_norms_figure({kind: view.gradient_norms for kind, view in views.items()}),
                        key="pg_gradients", width="stretch")
        st.caption("The norm of each hidden layer's weight gradient, ‖∂loss/∂W‖, on the last training batch "
                   "(empty before the first step). Where it is tiny, that layer barely learns.")
    if running and all(view.diverged for view in views.values()):
        state["pg_running"] = False
        st.rerun()  # stop polling: nothing left to train
    if running:
        # Train after drawing: every element above has already been sent in this run, so nothing is
        # shown faded as stale while the slice trains; the next redraw shows what it learnt.
        playground.run_for(TRAIN_SLICE_SECONDS)
