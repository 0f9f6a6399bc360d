"""The lesion and landscape pages' shared part: analyses requested as jobs, followed while they run."""

from __future__ import annotations

import streamlit as st

from explorer.analysis.runs import RunRecords
from explorer.analysis.tasks import Task, TaskBoard, shown_message
from explorer.i18n import N_
from explorer.ui.converged import pick_converged
from explorer.ui.failures import shows_failures
from explorer.ui.i18n import _
from explorer.ui.jobs import job_manager, latest_group, pick_runs

POLL_SECONDS = 1.0


@st.cache_resource(show_spinner=False)
def _board(_backend) -> TaskBoard:
    return TaskBoard(_backend)


def task_board() -> TaskBoard:
    """One board for the server, on the training runs' backend: analyses run where runs train."""
    return _board(job_manager().backend)


def pick_trained_runs(key: str, converged: tuple[int, ...] = (), converged_default: tuple[int, ...] = ()
                      ) -> list[RunRecords]:
    """The runs to analyse (this session's latest comparison by default), and before them the published
    converged nets of depths ``converged`` that are picked; with none at all, a word on how to make some, and
    the page stops."""
    records = pick_runs(key, default=latest_group())
    if converged:
        records = pick_converged(f"{key}-converged", converged, converged_default) + records
    if not records:
        st.info(_("No runs yet: train a plain and a residual net of the same depth (the Train page's quick pair or "
                  "the Fig. 6 preset), then come back.")
                + (" " + _("Or pick a converged net above.") if converged else ""))
        st.stop()
    return records


def analyse(kind: str, records: list[RunRecords], options: dict, state_key: str, start_label: str,
            refusal_hint: str = "") -> list[Task]:
    """A Start button for ``kind`` on these runs; the tasks this session asked for with these settings.

    Results made before on the same weights and settings come from the cache at once, without a
    click. While any task runs, a fragment shows its progress every second and reruns the page
    when the last one ends."""
    board = task_board()
    asked = st.session_state.setdefault(state_key, set())
    wanted = [(record.run_dir, _key(options)) for record in records]
    clicked = st.button(start_label, type="primary", icon=":material/play_arrow:")
    if clicked:
        asked.update(wanted)
    tasks = []
    for record, key in zip(records, wanted):
        if key in asked or board.has_result(kind, record.run_dir, options):
            tasks.append(board.request(kind, record.run_dir, options, retry=clicked))
    if any(task.state in ("queued", "running") for task in tasks):
        st.fragment(_progress, run_every=POLL_SECONDS)(tasks)
    for task in tasks:
        if task.state == "failed":
            hint = refusal_hint if task.message.startswith("would take about") else ""
            st.error(f"{_name(task)}: {shown_message(task.message, _)}{hint}", icon=":material/error:")
    return [task for task in tasks if task.state == "done"]


@shows_failures(N_("The analysis' progress"))
def _progress(tasks: list[Task]) -> None:
    for task in tasks:
        progress = task.progress
        if task.state == "queued":
            st.progress(0.0, text=_("{run}: waiting for a free worker").format(run=_name(task)))
        elif task.state == "running":
            if progress and progress[1]:
                done, total = progress
                st.progress(done / total, text=_("{run}: {done} of {total} evaluations").format(
                    run=_name(task), done=done, total=total))
            else:
                st.progress(0.0, text=_("{run}: loading the run and its test images").format(run=_name(task)))
    if not any(task.state in ("queued", "running") for task in tasks):
        st.rerun()  # all ended: the whole page draws the results


def _name(task: Task) -> str:
    return task.run_dir.rstrip("/").rsplit("/", 1)[-1]


def _key(options: dict) -> str:
    return repr(sorted(options.items()))
