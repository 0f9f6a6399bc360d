"""The live training panel: a fragment that polls the run folders, so every other widget stays usable."""

from __future__ import annotations

import re

import streamlit as st

from explorer.analysis.runs import augmentation_note, read_run, run_label
from explorer.figures import training_curves_figure
from explorer.i18n import N_
from explorer.train.store import Run
from explorer.ui.failures import shows_failures
from explorer.ui.i18n import _, translate
from explorer.ui.jobs import describe_state, job_manager
from explorer.ui.session import viewer

REFRESH_SECONDS = 2.0  # progress bars and buttons
# The curves redraw every 4 s, one chart at a time. With the Train page open during the Fig. 6
# preset on 2 cores, Chromium redrawing two plotly charts every second took 120 CPU s of the cores
# the workers train on: 1.66x the CLI's time (0.98x with the tab elsewhere). Panel 1 s and curves
# 3 s: 52 CPU s, 1.28x; panel 2 s and curves 4 s: 33 CPU s, 1.12x (bench/app_preset.py). Runs log
# every few seconds anyway.
CHART_REFRESH_SECONDS = 4.0
CURVES = {"error": N_("Error (%)"), "loss": N_("Loss")}


def run_controls(run: Run, status: dict, key: str) -> None:
    """The run's progress, and the buttons this session may use on it (another session's run has none)."""
    manager = job_manager()
    state = status.get("state")
    total = status.get("total_steps") or 0
    step = status.get("step", 0)
    left, right = st.columns([3, 2])
    left.progress(min(step / total, 1.0) if total else 0.0,
                  text=_("**{run}**: step {step:,} of {total:,}; {state}").format(
                      run=run_label(run, _=_), step=step, total=total, state=describe_state(status, manager, run)))
    by = viewer().acting_as
    if not manager.can_control(run, by):
        right.caption(_("Started in another session: only it or the instructor can control this run."))
        return
    buttons = right.columns(3)
    if state in ("running", "queued") and buttons[0].button(_("Pause"), key=f"pause-{key}", icon=":material/pause:"):
        _act(lambda: st.toast(manager.pause(run.path, by=by, _=_)))
    if state == "paused" and buttons[0].button(_("Resume"), key=f"resume-{key}", icon=":material/play_arrow:"):
        _resume(manager, run, by)
    if state in ("running", "queued", "paused") and buttons[1].button(_("Stop"), key=f"stop-{key}",
                                                                      icon=":material/stop:"):
        _act(lambda: st.toast(manager.stop(run.path, by=by, _=_)))
    if state in ("stopped", "interrupted") and buttons[2].button(_("Resume"), key=f"continue-{key}",
                                                                   icon=":material/replay:"):
        _resume(manager, run, by)


def _resume(manager, run: Run, by: str | None) -> None:
    """Resume ``run`` and rerun the whole page: the panel then shows it queued or running and polls
    it (whether the panel polls is decided on a full run); a refusal is shown instead."""
    if _act(lambda: manager.resume(run.path, by=by, _=_)):
        st.rerun()


def _act(action) -> bool:
    """Do ``action``; a refusal (the run ended or was resumed in another tab meanwhile, or it is not
    this session's) is shown as a message. Whether it was done."""
    try:
        action()
    except (ValueError, PermissionError) as error:
        st.error(str(error), icon=":material/error:")
        return False
    return True


ACTIVE = ("queued", "running", "paused")
# While none of its runs is active, the panel still looks every few seconds, so that a run resumed
# in another tab (or from the CLI) is picked up; it then reruns the page and polls every REFRESH_SECONDS.
IDLE_REFRESH_SECONDS = 5.0


def live_panel(run_dirs: list[str], curves: bool = True) -> None:
    """Progress and controls of these runs, redrawn every REFRESH_SECONDS while any is active, and their
    curves, redrawn every few seconds. Only the fragments rerun, so every other widget stays usable;
    the whole page reruns once when the last of them ends."""
    active = any(Run(run_dir).status().get("state") in ACTIVE for run_dir in run_dirs if Run(run_dir).exists())
    st.fragment(_panel, run_every=REFRESH_SECONDS if active else IDLE_REFRESH_SECONDS)(run_dirs, active)
    if curves and any(Run(run_dir).exists() for run_dir in run_dirs):
        st.fragment(_curves, run_every=CHART_REFRESH_SECONDS if active else None)(run_dirs)


@shows_failures(N_("The runs' progress"))
def _panel(run_dirs: list[str], was_active: bool) -> None:
    runs = [Run(run_dir) for run_dir in run_dirs]
    present = [run for run in runs if run.exists()]
    if len(present) < len(runs):
        st.warning(_("{count} of these runs were deleted.").format(count=len(runs) - len(present)))
    if not present:
        st.info(_("No runs to show yet: start one above."))
        return
    for index, run in enumerate(present):
        run_controls(run, run.status(), key=f"{index}-{run.id}")
    if was_active != any(run.status().get("state") in ACTIVE for run in present):
        st.rerun()  # all done, or one resumed elsewhere: a full rerun sets how often the panels poll


@shows_failures(N_("The training curves"))
def _curves(run_dirs: list[str]) -> None:
    present = [Run(run_dir) for run_dir in run_dirs if Run(run_dir).exists()]
    # One chart at a time (a hidden tab's chart would be sent and drawn on every redraw too).
    names = {key: translate(name) for key, name in CURVES.items()}  # looked up in this run, not when formatted
    metric = st.segmented_control(_("Curves"), list(CURVES), format_func=names.get, default="error",
                                  key="live-metric", label_visibility="collapsed") or "error"
    records = [read_run(run) for run in present]
    st.plotly_chart(training_curves_figure(records, metric, _=_), width="stretch", key="live-curves")
    if metric == "loss":
        caption = _("Dashed: training loss (averaged over each logging interval; {augmentation}); solid: test loss. "
                    "One colour per run, as in the paper's Fig. 1 and Fig. 6. Redrawn every {seconds:g} s while a "
                    "run trains.")
    else:
        caption = _("Dashed: training error (averaged over each logging interval; {augmentation}); solid: test "
                    "error. One colour per run, as in the paper's Fig. 1 and Fig. 6. Redrawn every {seconds:g} s "
                    "while a run trains.")
    st.caption(caption.format(augmentation=augmentation_note(records, _=_), seconds=CHART_REFRESH_SECONDS))
    for record in records:
        for problem in record.problems:
            st.caption(f"{record.label}: {shown_problem(problem)}")


_SKIPPED_LINE = re.compile(r"(?P<file>\S+) line (?P<line>\d+): (?P<why>corrupt|half-written) \(skipped\)")


def shown_problem(problem: str) -> str:
    """A line a run's reader skipped (explorer/train/jsonl.py says it in English), in this session's language."""
    match = _SKIPPED_LINE.fullmatch(problem)
    if not match:
        return problem
    text = (_("{file} line {line}: corrupt (skipped)") if match["why"] == "corrupt" else
            _("{file} line {line}: half-written (skipped)"))
    return text.format(file=match["file"], line=match["line"])
