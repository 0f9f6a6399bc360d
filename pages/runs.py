import pandas as pd
import streamlit as st

from explorer.analysis.runs import metrics_table, read_run, run_label
from explorer.figures import training_curves_figure
from explorer.train.store import Run
from explorer.ui.jobs import all_runs, job_manager
from explorer.ui.session import viewer

st.title("Runs")
st.caption("Every saved run under runs/. Pick rows to overlay their curves; delete or download them.")

who = viewer()
runs = all_runs(who)
if not runs:
    st.info("No runs yet: start one on the Train page.")
    st.stop()

table = pd.DataFrame([{**run.summary(), "whose": who.describe(run.status())} for run in runs])
selection = st.dataframe(
    table[["id", "whose", "state", "model", "dataset", "step", "total_steps", "train_error", "test_error",
           "images_per_sec", "message"]],
    # Narrow columns for the short values, so that the table fits a laptop's width and the long
    # message wraps into its own column rather than pushing the rest off to the right.
    column_config={"id": st.column_config.TextColumn(width="medium", pinned=True),
                   "whose": st.column_config.TextColumn(width="small"),
                   "state": st.column_config.TextColumn(width="small"),
                   "model": st.column_config.TextColumn(width="small"),
                   "dataset": st.column_config.TextColumn("data", width="small"),
                   "step": st.column_config.NumberColumn(width="small"),
                   "total_steps": st.column_config.NumberColumn("of", width="small"),
                   "train_error": st.column_config.NumberColumn("train err", format="percent", width="small"),
                   "test_error": st.column_config.NumberColumn("test err", format="percent", width="small"),
                   "images_per_sec": st.column_config.NumberColumn("images/s", format="%.0f", width="small"),
                   "message": st.column_config.TextColumn(width="large")},
    hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="runs-table",
)
picked = [runs[index] for index in selection.selection.rows if index < len(runs)] or runs[-2:]
records = [read_run(run) for run in picked if run.exists()]
st.plotly_chart(training_curves_figure(records, "error", title="Error (%): training dashed, test solid"),
                width="stretch")
for record in records:
    with st.expander(f"{record.label}: configuration"):
        st.json(Run(record.run_dir).config())
    for problem in record.problems:
        st.caption(f"{record.label}: {problem}")

left, right = st.columns(2)
# The CSV is made when the button is clicked, not on every render (long runs take seconds).
left.download_button("Download these runs' metrics (CSV)",
                     lambda: pd.DataFrame(metrics_table(records)).to_csv(index=False),
                     file_name="resnet-explorer-metrics.csv", mime="text/csv", icon=":material/download:")
manager = job_manager()
deletable = [run for run in picked if manager.can_control(run, who.acting_as)]
with right.popover("Delete these runs", icon=":material/delete:", disabled=not deletable):
    st.write(", ".join(run_label(run) for run in deletable))
    if len(deletable) < len(picked):
        st.caption("Runs of other sessions and shared runs stay: only the instructor can delete those.")
    if st.button("Delete for good", type="primary"):
        for run in deletable:
            job = manager.get(run.path)
            if job and not job.finished:
                manager.stop(run.path, by=who.acting_as)
                manager.wait(run.path, timeout=30)
            run.delete()
        st.rerun()
