"""The Runs page's storage section: a student's runs against their quota and as one zip; the
instructor's view of what each owner's runs take, the disk's free space, and pruning old runs."""

from __future__ import annotations

import io

import streamlit as st

from explorer.train.storage import export_runs, owner_bytes, prunable, prune, session_quota_bytes, usage_by_owner
from explorer.train.store import DEFAULT_RUNS_DIR, Run, free_bytes
from explorer.ui.i18n import _
from explorer.ui.session import Viewer


def _mb(count: int) -> str:
    return f"{count / 2**20:,.1f} MB"


def _zip(runs: list[Run]) -> bytes:
    buffer = io.BytesIO()
    export_runs([run.path for run in runs], buffer)
    return buffer.getvalue()


def storage_section(who: Viewer, runs: list[Run]) -> None:
    st.subheader(_("Storage"))
    if who.instructor:
        _instructor(runs)
        return
    mine = runs  # a student's own runs, as the page hands them
    try:
        quota = session_quota_bytes()
    except ValueError as error:
        st.error(str(error), icon=":material/error:")
        return
    used = owner_bytes(DEFAULT_RUNS_DIR, who.key)
    st.progress(min(used / quota, 1.0), text=_("Your runs take {used} of your {quota}. A new run that would pass "
                                               "it is refused: delete old runs above to make room.").format(
        used=_mb(used), quota=_mb(quota)))
    if mine:
        st.download_button(_("Download your {count} runs as one zip").format(count=len(mine)), lambda: _zip(mine),
                           file_name="resnet-explorer-runs.zip", mime="application/zip", icon=":material/download:",
                           help=_("Opens again with `python -m explorer runs import FILE.zip`, or unzipped into a "
                                  "runs folder."))


def _instructor(runs: list[Run]) -> None:
    usage = usage_by_owner(DEFAULT_RUNS_DIR)
    free = free_bytes(DEFAULT_RUNS_DIR)
    owner_column, runs_column = _("owner"), _("runs")
    rows = [{owner_column: _("shared (yours, the CLI's)") if owner is None else
             _("student ·{key}").format(key=owner[-4:]),
             runs_column: entry["runs"], "MB": round(entry["bytes"] / 2**20, 1)}
            for owner, entry in sorted(usage.items(), key=lambda item: -item[1]["bytes"])]
    st.dataframe(rows, hide_index=True)
    st.caption(_("The disk holding {folder} has {free} free.").format(
        folder=DEFAULT_RUNS_DIR.absolute(), free="?" if free is None else _mb(free)))
    days = st.number_input(_("Delete students' runs unchanged for more than this many days"), 1, 3650, 30,
                           key="prune-days")
    old = prunable(DEFAULT_RUNS_DIR, days, "")
    with st.popover(_("Delete {count} students' runs older than {days} days").format(count=len(old), days=days),
                    icon=":material/delete_sweep:", disabled=not old):
        st.write(_("{count} runs of students, none training: this cannot be undone.").format(count=len(old)))
        if st.button(_("Delete them for good"), type="primary", key="prune-confirm"):
            freed = prune(old)
            st.toast(_("Deleted {count} runs, {freed} freed.").format(count=len(old), freed=_mb(freed)))
            st.rerun()
    if runs:
        st.download_button(_("Download these {count} runs as one zip").format(count=len(runs)), lambda: _zip(runs),
                           file_name="resnet-explorer-runs.zip", mime="application/zip", icon=":material/download:")
