"""The one job manager every session shares, and widgets over the run store."""

from __future__ import annotations

import os

import streamlit as st

from explorer.analysis.runs import RunRecords, read_run, run_label
from explorer.train.jobs import JobManager
from explorer.train.store import DEFAULT_RUNS_DIR, Run, list_runs

MAX_CONCURRENT = int(os.environ.get("RESNET_EXPLORER_MAX_JOBS", "4"))


@st.cache_resource
def job_manager() -> JobManager:
    # Shared by every session and kept across reruns: a slider move or a closed tab never stops a
    # run. Runs left active by a previous server are marked interrupted when it is created.
    return JobManager(DEFAULT_RUNS_DIR, max_concurrent=MAX_CONCURRENT)


def all_runs() -> list[Run]:
    job_manager()  # marks runs of a previous server as interrupted before they are listed
    return [run for run in list_runs(DEFAULT_RUNS_DIR) if run.exists()]


def latest_group() -> list[Run]:
    """The runs of the most recently started comparison (what the Train page shows after a reload)."""
    runs = all_runs()
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
    labels = {str(run.path): f"{run_label(run)} [{run.status().get('state', '?')}]" for run in runs}
    default_dirs = [str(run.path) for run in (default or []) if str(run.path) in labels] or list(labels)[-2:]
    chosen = st.multiselect("Runs", list(labels), default=default_dirs, format_func=labels.get, key=key)
    records = []
    for run_dir in chosen:
        if Run(run_dir).exists():
            records.append(read_run(run_dir))
        else:
            st.warning(f"{labels[run_dir]} was deleted.")
    for record in records:
        for problem in record.problems:
            st.caption(f"{record.label}: {problem}")
    return records


def describe_state(status: dict, manager: JobManager, run: Run) -> str:
    state = status.get("state", "?")
    if state == "queued":
        place = manager.queue_position(run.path)
        return f"queued{f', number {place} in line' if place else ''} (at most {manager.max_concurrent} train at once)"
    if state in ("running", "paused"):
        rate = status.get("images_per_sec")
        left = status.get("seconds_left")
        parts = [state, f"{rate:,.0f} images/s" if rate else None, f"about {left:,.0f} s left" if left else None]
        return ", ".join(part for part in parts if part)
    message = status.get("message", "")
    return message if message.startswith(state) else f"{state}: {message}"

