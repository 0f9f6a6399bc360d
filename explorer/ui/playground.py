"""The playground's widgets, its URL and its live panel (explorer/playground/ does the work).

Training happens in the playground's own worker thread (explorer/playground/live.py) while the
student has pressed Run; the page only polls its newest snapshot and passes on clicks, so no click
waits for training. Closing the tab pauses it within seconds, as in the TensorFlow Playground; a run
that must outlive the page belongs on the Train page's background jobs.
"""

from __future__ import annotations

import time

import streamlit as st

from explorer.fields import specs
from explorer.i18n import N_
from explorer.playground import (
    LivePlayground,
    PlaygroundSettings,
    boundary_image,
    gradient_norms_figure,
    loss_curves_figure,
    settings_from_query,
    settings_to_query,
    summarise,
)
from explorer.ui.failures import shows_failures
from explorer.ui.feedback import explain_errors
from explorer.ui.i18n import _, translate

# How often a running panel is redrawn from the worker's newest snapshot. Each redraw sends two
# images and two plotly charts; faster costs the students' browsers more than it shows.
POLL_SECONDS = 0.25
MIN_STEPS_FOR_SPEED = 50  # the first steps carry one-off costs; a rate from them would mislead
RATE_WINDOW = 10  # redraws over which the update rate is measured
LR_CHOICES = (0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BATCH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WIDTH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LABELS = {
    "nets": {"both": N_("Plain and residual, side by side"), "plain": N_("Plain only"),
             "residual": N_("Residual only")},
    "norm": {"none": N_("none"), "batchnorm": "BatchNorm"},
    "init": {"pytorch": N_("PyTorch default"), "he": N_("He (Kaiming normal)")},
    "optimiser": {"adam": "Adam", "sgd": N_("SGD, momentum 0.9")},
}


# The widgets take their ranges, choices and help from the settings' fields, as the URL and the CLI do.
SPECS = specs(PlaygroundSettings)


def _key(name: str) -> str:
    return f"pg_{name}"


def _help(name: str) -> str:
    return translate(SPECS[name].help)


def _label(name: str):
    """The option labels of a setting, in the session's language (the values stay as they are);
    translated now, so the function gives the same labels wherever it is called from."""
    return {value: translate(label) for value, label in LABELS[name].items()}.get


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
        state["pg_settings"], state["pg_url_problems"] = settings_from_query(st.query_params.to_dict(), _)
        state["pg_url_settings"] = state["pg_settings"]
    saved = state["pg_settings"]
    for name in SPECS:  # widgets forget their values when the page is left; restore them
        if _key(name) not in state:
            state[_key(name)] = getattr(saved, name)

    with st.sidebar:
        st.subheader(_("Data"))
        st.selectbox(_("Data set"), _choices("dataset"), key=_key("dataset"), help=_help("dataset"))
        st.slider(_("Noise"), *_range("noise"), step=0.01, key=_key("noise"), help=_help("noise"))
        columns = st.columns(2)
        columns[0].number_input(_("Points"), *_range("points"), step=50, key=_key("points"), help=_help("points"))
        columns[1].slider(_("Training %"), *_range("train_percent"), step=5, key=_key("train_percent"),
                          help=_help("train_percent"))
        st.subheader(_("Network"))
        st.radio(_("Nets"), _choices("nets"), format_func=_label("nets"), key=_key("nets"))
        st.slider(_("Depth (hidden layers)"), *_range("depth"), key=_key("depth"), help=_help("depth"))
        st.select_slider(_("Width"), _with(WIDTH_CHOICES, state[_key("width")]), key=_key("width"),
                         help=_help("width"))
        columns = st.columns(2)
        columns[0].selectbox(_("Activation g"), _choices("activation"), key=_key("activation"))
        columns[1].radio(_("Normalisation"), _choices("norm"), format_func=_label("norm"), key=_key("norm"),
                         help=_help("norm"))
        st.selectbox(_("Initial weights"), _choices("init"), format_func=_label("init"), key=_key("init"),
                     help=_help("init"))
        st.subheader(_("Training"))
        st.radio(_("Optimiser"), _choices("optimiser"), format_func=_label("optimiser"), key=_key("optimiser"),
                 horizontal=True)
        st.select_slider(_("Learning rate"), _with(LR_CHOICES, state[_key("lr")]), format_func=lambda lr: f"{lr:g}",
                         key=_key("lr"))
        st.select_slider(_("Batch size"), _with(BATCH_CHOICES, state[_key("batch_size")]), key=_key("batch_size"))
        st.number_input(_("Seed"), *_range("seed"), key=_key("seed"), help=_help("seed"))

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


def current_playground(settings: PlaygroundSettings) -> LivePlayground:
    """The session's playground; new nets when a setting other than learning rate or batch size changed."""
    state = st.session_state
    live: LivePlayground | None = state.get("pg_live")
    with explain_errors(_("Cannot build these nets")):
        settings.validate()
        if live is None or not live.apply(settings):
            if live is not None:
                live.close()
            live = LivePlayground(settings)
            state["pg_live"] = live
            state["pg_ticks"] = []
    return live


# Each click is carried out once. Measured with Streamlit 1.67: while the panel's fragment reruns
# every POLL_SECONDS, a click's callback can be dispatched twice, 10 ms apart (a script run
# preempted just after its callbacks, then the same trigger again). A toggle run twice undoes
# itself: that was the "lost" Pause. So the buttons say what they do (Run, Pause), and every
# callback carries the number of clicks the page had handled when it drew the button; a second
# dispatch of the same click finds that number already moved on and does nothing.

def _handled(drawn_at: int) -> bool:
    """Whether this click was carried out already; if not, count it as carried out now."""
    state = st.session_state
    if state.get("pg_clicks", 0) != drawn_at:
        return True
    state["pg_clicks"] = drawn_at + 1
    return False


def _run(drawn_at: int) -> None:
    if not _handled(drawn_at):
        st.session_state["pg_live"].run()
        st.session_state["pg_ticks"] = []


def _pause(drawn_at: int) -> None:
    if not _handled(drawn_at):
        st.session_state["pg_live"].pause()


def _step_once(drawn_at: int) -> None:
    if not _handled(drawn_at):
        st.session_state["pg_live"].step(1)


def _reset(drawn_at: int) -> None:
    if not _handled(drawn_at):
        live = st.session_state.pop("pg_live", None)
        if live is not None:
            live.close()


def controls() -> bool:
    """Run or Pause, Step and Reset, as in the TensorFlow Playground; returns whether it is running.
    Drawn inside the live panel's fragment: a click there reruns only the panel, not the whole page
    with its sidebar (measured on 2 cores, Pause while running: 0.42 s median outside the fragment,
    0.32 s inside; bench/playground_clicks.py)."""
    running = st.session_state["pg_live"].running
    clicks = (st.session_state.get("pg_clicks", 0),)
    columns = st.columns([1, 1, 1, 5])
    if running:
        columns[0].button(_("Pause"), icon=":material/pause:", type="primary", on_click=_pause, args=clicks,
                          key="pg_pause", width="stretch")
    else:
        columns[0].button(_("Run"), icon=":material/play_arrow:", type="primary", on_click=_run, args=clicks,
                          key="pg_run", width="stretch")
    columns[1].button(_("Step"), icon=":material/skip_next:", on_click=_step_once, args=clicks, key="pg_step",
                      width="stretch", help=_("Pause and train one batch"))
    columns[2].button(_("Reset"), icon=":material/restart_alt:", on_click=_reset, args=clicks, key="pg_reset",
                      width="stretch", help=_("New nets from the same seed: the same starting weights again"))
    columns[3].caption(_("The address bar holds every setting: copy it to share this exact setup."))
    return running


def _polls(live: LivePlayground) -> bool:
    """Whether the panel redraws itself: while running, and after a Pause until the worker's slice in
    flight has landed (``settling``)."""
    return live.running or live.settling


def live_panel() -> None:
    """The buttons, boundaries, curves and gradient norms; while running, redrawn from the worker's
    newest snapshot several times a second (the training itself runs in the worker's thread, never
    in this script)."""
    polling = _polls(st.session_state["pg_live"])
    st.session_state["pg_polling"] = polling
    st.fragment(_panel, run_every=POLL_SECONDS if polling else None)()


@shows_failures(N_("The playground's nets"))
def _panel() -> None:
    state = st.session_state
    if "pg_live" not in state:  # Reset, clicked in this fragment: new nets from the same settings
        current_playground(state["pg_settings"])
    running = controls()
    live: LivePlayground = state["pg_live"]
    _draw(live, running)
    if _polls(live) != state.get("pg_polling"):
        # Run or Pause was clicked here, or the worker paused by itself (every net diverged, nobody
        # watched), or its last slice has landed: the whole page is drawn again, to start or stop the
        # polling. Last, so that the answer to the click is already on the screen.
        st.rerun()


def _draw(live: LivePlayground, running: bool) -> None:
    state = st.session_state
    snapshot = live.snapshot()
    views = snapshot.views
    ticks = state.setdefault("pg_ticks", [])
    if running:
        ticks.append(time.perf_counter())
        del ticks[:-RATE_WINDOW]

    status = [_("**Step {steps:,}**").format(steps=snapshot.steps)]
    speeds = [view.steps_per_sec for view in views.values() if view.steps_per_sec]
    if speeds and snapshot.steps >= MIN_STEPS_FOR_SPEED:
        status.append(_("training {rate:,.0f} steps/s per net").format(rate=min(speeds)))
    if running and len(ticks) >= 2:
        status.append(_("redrawn {rate:.1f} times/s").format(rate=(len(ticks) - 1) / (ticks[-1] - ticks[0])))
    status.append(_("running") if running else _("pausing") if live.settling else _("paused"))
    st.markdown(" · ".join(status))
    if live.error is not None:
        st.error(_("Training stopped: {error}").format(error=live.error), icon=":material/error:")
    elif live.stopped_because and not running:
        st.info(live.stopped_text(_), icon=":material/pause_circle:")

    playground = live.playground
    data, settings = playground.data, live.settings
    columns = st.columns(max(2, len(views)))
    for column, (kind, view) in zip(columns, views.items()):
        with column:
            if kind == "residual":
                title = _("**Residual net**: {depth} hidden layers of {width}, with shortcuts")
            else:
                title = _("**Plain net**: {depth} hidden layers of {width}, no shortcuts")
            st.markdown(title.format(depth=settings.depth, width=settings.width))
            st.image(boundary_image(view.probabilities, playground.extent, data.x_train, data.y_train,
                                    data.x_test, data.y_test), width="stretch")
            evaluation = view.evaluation
            st.caption(_("Loss: training {train_loss:.3f}, test {test_loss:.3f}. Accuracy: training "
                         "{train_accuracy:.1%}, test {test_accuracy:.1%}.").format(
                train_loss=evaluation.train_loss, test_loss=evaluation.test_loss,
                train_accuracy=evaluation.train_accuracy, test_accuracy=evaluation.test_accuracy))
    st.caption(_("Background: the net's probability of {one!r} (blue) against {zero!r} (orange) over "
                 "[-{extent:g}, {extent:g}]². Points: their true class; white rim: training points, black rim: test "
                 "points.").format(one=data.classes[1], zero=data.classes[0], extent=playground.extent))
    st.info(summarise(views, _), icon=":material/monitoring:")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(loss_curves_figure({kind: view.history for kind, view in views.items()}, _),
                        key="pg_losses", width="stretch")
        st.caption(_("Dashed: loss on the training points; solid: on the test points (both on the whole set, "
                     "with BatchNorm in test mode)."))
    with right:
        st.plotly_chart(gradient_norms_figure({kind: view.gradient_norms for kind, view in views.items()}, _),
                        key="pg_gradients", width="stretch")
        st.caption(_("The norm of each hidden layer's weight gradient, ‖∂loss/∂W‖, on the last training batch "
                     "(empty before the first step). Where it is tiny, that layer barely learns."))
