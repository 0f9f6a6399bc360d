"""The one job manager every session shares, and widgets over the runs this session may see."""

from __future__ import annotations

import os
import threading

import streamlit as st

from explorer.analysis.runs import RunRecords, read_run, run_label
from explorer.i18n import N_
from explorer.train.execution import LocalBackend
from explorer.train.jobs import BACKEND_ENV, JobManager
from explorer.train.store import DEFAULT_RUNS_DIR, Run, list_runs
from explorer.ui.i18n import _, translate
from explorer.ui.session import Viewer, viewer

MAX_CONCURRENT = int(os.environ.get("RESNET_EXPLORER_MAX_JOBS", "4"))
# A student's session trains at most this many runs at once (a quick pair by default), so one
# session cannot take every slot; the instructor's runs are not held to it.
PER_SESSION = int(os.environ.get("RESNET_EXPLORER_JOBS_PER_SESSION", str(max(1, MAX_CONCURRENT // 2))))
# A run's state (explorer/train/store.py's STATES) as the pages show it; the status keeps the English.
STATE_NAMES = {"queued": N_("queued"), "running": N_("running"), "paused": N_("paused"),
               "completed": N_("completed"), "stopped": N_("stopped"), "diverged": N_("diverged"),
               "failed": N_("failed"), "interrupted": N_("interrupted")}


def state_name(state):
    """A run's state in this session's language (an unknown one, or None, as it is)."""
    return translate(STATE_NAMES[state]) if isinstance(state, str) and state in STATE_NAMES else state


@st.cache_resource(show_spinner=False)
def _shared_manager() -> JobManager:
    # Shared by every session and kept across reruns: a slider move or a closed tab never stops a
    # run. Runs left active by a previous server are marked interrupted when it is created.
    return JobManager(DEFAULT_RUNS_DIR, max_concurrent=MAX_CONCURRENT, per_owner=PER_SESSION)


@st.cache_resource(show_spinner=False)
@st.cache_resource(show_spinner=False)
def warm_workers() -> None:
    """Start the worker processes' fork server in the background when the server starts, so that
    the first run starts at once (it imports torch: seconds). Once per server, not per script run
    (a fork server that died later is started again by the next run's start)."""
    if (os.environ.get(BACKEND_ENV) or "local") == "local":
        threading.Thread(target=LocalBackend().warm, name="warm-workers", daemon=True).start()


def job_manager() -> JobManager:
    """The shared manager; if its backend cannot start (Ray absent or unreachable), the page says
    why and how to fix it, and stops."""
    try:
        return _shared_manager()
    except ValueError as error:
        st.error(unavailable(error), icon=":material/error:")
        st.stop()


def unavailable(error: Exception) -> str:
    return _("Training is not available: {reason} (the backend is chosen with ${variable}).").format(
        reason=error, variable=BACKEND_ENV)


def shared_manager() -> JobManager:
    """The shared manager, for callbacks (where the page cannot stop): raises ValueError with the
    reason when its backend cannot start."""
    try:
        return _shared_manager()
    except ValueError as error:
        raise ValueError(unavailable(error)) from error


def all_runs(who: Viewer | None = None) -> list[Run]:
    """The runs this session may see: its own and the shared ones (every run for the instructor)."""
    job_manager()  # marks runs of a previous server as interrupted before they are listed
    who = who or viewer()
    return [run for run in list_runs(DEFAULT_RUNS_DIR) if run.exists() and who.sees(run.status())]


def latest_group() -> list[Run]:
    """This session's most recently started comparison (what the Train page shows after a reload);
    the latest shared one when it has started none."""
    who = viewer()
    visible = all_runs(who)
    runs = [run for run in visible if run.status().get("owner") == who.owner] or visible
    groups = [run.status().get("group") for run in runs]
    named = [group for group in groups if group]
    if not named:
        return []
    latest = max(named)
    return [run for run, group in zip(runs, groups) if group == latest]


def pick_runs(key: str, default: list[Run] | None = None, with_probes: bool = False) -> list[RunRecords]:
    """A multiselect over saved runs; returns their records (folders deleted meanwhile are skipped)."""
    runs = all_runs()
    if with_probes:
        runs = [run for run in runs if (run.path / "probes.jsonl").exists()]
    if not runs:
        return []
    labels = {str(run.path): f"{run_label(run, _=_)} [{state_name(run.status().get('state', '?'))}]"
              for run in runs}
    default_dirs = [str(run.path) for run in (default or []) if str(run.path) in labels] or list(labels)[-2:]
    chosen = st.multiselect(_("Runs"), list(labels), default=default_dirs, format_func=labels.get, key=key, placeholder=_("Choose options"))
    records = []
    for run_dir in chosen:
        if Run(run_dir).exists():
            records.append(read_run(run_dir))
        else:
            st.warning(_("{run} was deleted.").format(run=labels[run_dir]))
    for record in records:
        for problem in record.problems:
            st.caption(f"{record.label}: {problem}")
    return records


def describe_state(status: dict, manager: JobManager, run: Run) -> str:
    """The run's state in a few words; the message the trainer wrote in its status stays as written."""
    state = status.get("state", "?")
    if state == "queued":
        return manager.waiting_reason(run.path, _=_) or state_name("queued")
    if state in ("running", "paused"):
        rate = status.get("images_per_sec")
        left = status.get("seconds_left")
        parts = [state_name(state), _("{rate:,.0f} images/s").format(rate=rate) if rate else None,
                 _("about {seconds:,.0f} s left").format(seconds=left) if left else None]
        return ", ".join(part for part in parts if part)
    message, shown = status.get("message", ""), state_name(state)
    # "completed 12 steps" says its state already, in English (the trainer's words); another
    # language names the state first.
    return message if message.startswith(state) and shown == state else f"{shown}: {message}"
