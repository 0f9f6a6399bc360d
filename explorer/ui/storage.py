"""The Runs page's storage section: a student's runs against their quota and as one zip; the
instructor's view of what each owner's runs take, the disk's free space, and pruning old runs."""

from __future__ import annotations

import io

import streamlit as st

from explorer.train.storage import export_runs, owner_bytes, prunable, prune, session_quota_bytes, usage_by_owner
from explorer.train.store import DEFAULT_RUNS_DIR, Run, free_bytes
from explorer.ui.session import Viewer


def _mb(count: int) -> str:
    return f"{count / 2**20:,.1f} MB"


def _zip(runs: list[Run]) -> bytes:
    buffer = io.BytesIO()
    export_runs([run.path for run in runs], buffer)
    return buffer.getvalue()


def storage_section(who: Viewer, runs: list[Run]) -> None:
    st.subheader("Storage")
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
    st.progress(min(used / quota, 1.0), text=f"Your runs take {_mb(used)} of your {_mb(quota)}. A new run that "
                                             "would pass it is refused: delete old runs above to make room.")
    if mine:
        st.download_button(f"Download your {len(mine)} runs as one zip", lambda: _zip(mine),
                           file_name="resnet-explorer-runs.zip", mime="application/zip", icon=":material/download:",
                           help="Opens again with `python -m explorer runs import FILE.zip`, or unzipped into a "
                                "runs folder.")


def _instructor(runs: list[Run]) -> None:
    usage = usage_by_owner(DEFAULT_RUNS_DIR)
    free = free_bytes(DEFAULT_RUNS_DIR)
    rows = [{"owner": "shared (yours, the CLI's)" if owner is None else f"student ·{owner[-4:]}",
             "runs": entry["runs"], "MB": round(entry["bytes"] / 2**20, 1)}
            for owner, entry in sorted(usage.items(), key=lambda item: -item[1]["bytes"])]
    st.dataframe(rows, hide_index=True)
    st.caption(f"The disk holding {DEFAULT_RUNS_DIR.absolute()} has {'?' if free is None else _mb(free)} free.")
    days = st.number_input("Delete students' runs unchanged for more than this many days", 1, 3650, 30,
                           key="prune-days")
    old = prunable(DEFAULT_RUNS_DIR, days, "")
    with st.popover(f"Delete {len(old)} students' runs older than {days} days", icon=":material/delete_sweep:",
                    disabled=not old):
        st.write(f"{len(old)} runs of students, none training: this cannot be undone.")
        if st.button("Delete them for good", type="primary", key="prune-confirm"):
            freed = prune(old)
            st.toast(f"Deleted {len(old)} runs, {_mb(freed)} freed.")
            st.rerun()
    if runs:
        st.download_button(f"Download these {len(runs)} runs as one zip", lambda: _zip(runs),
                           file_name="resnet-explorer-runs.zip", mime="application/zip", icon=":material/download:")
