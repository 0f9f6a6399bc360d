import pandas as pd
import streamlit as st

from explorer.analysis.runs import augmentation_note, metrics_table, read_run, run_label
from explorer.figures import training_curves_figure
from explorer.train.precision import precision_reason
from explorer.train.store import Run
from explorer.ui.i18n import _
from explorer.ui.live import shown_problem
from explorer.ui.jobs import all_runs, job_manager, state_name
from explorer.ui.session import viewer
from explorer.ui.storage import storage_section

st.title(_("Runs"))
who = viewer()
st.caption(_("Every saved run under runs/. Pick rows to overlay their curves; delete or download them.")
           if who.instructor else _("Your runs, and the runs the instructor shares. Pick rows to overlay their "
                                    "curves and download them; you may delete your own."))

runs = all_runs(who)
if not runs:
    st.info(_("No runs yet: start one on the Train page."))
    storage_section(who, [])
    st.stop()

table = pd.DataFrame([{**run.summary(), "run": run_label(run, _=_), "whose": who.describe(run.status())}
                      for run in runs])
table["state"] = [state_name(state) for state in table["state"]]
table["steps"] = [f"{int(step) if pd.notna(step) else 0:,}" + (f" / {int(total):,}" if pd.notna(total) else "")
                  for step, total in zip(table["step"], table["total_steps"])]
for split in ("train", "test"):  # None for a run that has logged nothing yet
    table[f"{split}_error_percent"] = pd.to_numeric(table[f"{split}_error"], errors="coerce") * 100
selection = st.dataframe(
    table,
    # Widths in pixels that add up to a laptop's width beside the sidebar: the run's short label
    # (model and tag; the folder name is in the CSV and the configuration below), and the message
    # last, wrapping into what is left.
    column_order=["run", "whose", "state", "dataset", "steps", "train_error_percent", "test_error_percent",
                  "images_per_sec", "precision", "message"],
    column_config={"run": st.column_config.TextColumn(_("run"), width=170, pinned=True),
                   "whose": st.column_config.TextColumn(_("whose"), width=70),
                   "state": st.column_config.TextColumn(_("state"), width=85),
                   "dataset": st.column_config.TextColumn(_("data"), width=95),
                   "steps": st.column_config.TextColumn(_("steps"), width=90),
                   "train_error_percent": st.column_config.NumberColumn(_("train err"), format="%.1f%%", width=75),
                   "test_error_percent": st.column_config.NumberColumn(_("test err"), format="%.1f%%", width=70),
                   "images_per_sec": st.column_config.NumberColumn(_("images/s"), format="%.0f", width=70),
                   "precision": st.column_config.TextColumn(_("precision"), width=70),
                   "message": st.column_config.TextColumn(_("message"), width="large")},
    hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="runs-table",
)
picked = [runs[index] for index in selection.selection.rows if index < len(runs)] or runs[-2:]
records = [read_run(run) for run in picked if run.exists()]
st.plotly_chart(training_curves_figure(records, "error", title=_("Error (%): training dashed, test solid"), _=_),
                width="stretch")
if records:
    st.caption(_("Training error averaged over each logging interval; {augmentation}.").format(
        augmentation=augmentation_note(records, _=_)))
for record in records:
    with st.expander(_("{run}: configuration").format(run=record.label)):
        environment = Run(record.run_dir).status().get("environment") or {}
        if environment.get("precision"):
            trained = (_("Trained on {device} in {precision}, compiled: {reason}") if environment.get("compiled")
                       else _("Trained on {device} in {precision}: {reason}"))
            st.caption(trained.format(device=environment.get("device", "?"), precision=environment["precision"],
                                      reason=precision_reason(environment, _=_)))
        st.json(Run(record.run_dir).config())
    for problem in record.problems:
        st.caption(f"{record.label}: {shown_problem(problem)}")

left, right = st.columns(2)
# The CSV is made when the button is clicked, not on every render (long runs take seconds).
left.download_button(_("Download these runs' metrics (CSV)"),
                     lambda: pd.DataFrame(metrics_table(records)).to_csv(index=False),
                     file_name="resnet-explorer-metrics.csv", mime="text/csv", icon=":material/download:")
manager = job_manager()
deletable = [run for run in picked if manager.can_control(run, who.acting_as)]
with right.popover(_("Delete these runs"), icon=":material/delete:", disabled=not deletable):
    st.write(", ".join(run_label(run, _=_) for run in deletable))
    if len(deletable) < len(picked):
        st.caption(_("Runs of other sessions and shared runs stay: only the instructor can delete those."))
    if st.button(_("Delete for good"), type="primary"):
        for run in deletable:
            job = manager.get(run.path)
            if job and not job.finished:
                manager.stop(run.path, by=who.acting_as)
                manager.wait(run.path, timeout=30)
            run.delete()
        st.rerun()

storage_section(who, runs if who.instructor else [run for run in runs if run.status().get("owner") == who.key])
