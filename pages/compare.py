"""Compare: stored runs in a table; their training histories side by side or overlaid."""

from __future__ import annotations

import streamlit as st

from mnistlab import charts
from pages import common

st.title("Compare")
st.caption("Every stored run in one table. Pick runs to see their training histories side by side on shared "
           "axes, or overlaid one metric at a time.")

all_runs = common.runs()
if not all_runs:
    common.empty_state("compare")
    st.stop()

store = common.store()
colors = common.colors(all_runs)
table = store.runs_frame(all_runs)

f1, f2, f3 = st.columns(3)
tasks = f1.multiselect("Task", sorted(table["task"].unique()), key="compare_tasks", placeholder="all tasks")
archs = f2.multiselect("Architecture", sorted(table["arch"].unique()), key="compare_archs",
                       placeholder="all architectures")
optimizers = f3.multiselect("Optimizer", sorted(table["optimizer"].unique()), key="compare_optimizers",
                            placeholder="all optimizers")
shown = table
for column, chosen in (("task", tasks), ("arch", archs), ("optimizer", optimizers)):
    if chosen:
        shown = shown[shown[column].isin(chosen)]

COLUMNS = {
    "label": st.column_config.TextColumn("Run", width="large"),
    "test_accuracy": st.column_config.NumberColumn("Test acc", format="%.4f"),
    "best_val_accuracy": st.column_config.NumberColumn("Best val acc", format="%.4f"),
    "best_epoch": st.column_config.NumberColumn("Best epoch"),
    "final_loss": st.column_config.NumberColumn("Final loss", format="%.4f"),
    "final_val_loss": st.column_config.NumberColumn("Final val loss", format="%.4f"),
    "train_seconds": st.column_config.NumberColumn("Train s", format="%.1f"),
    "params": st.column_config.NumberColumn("Params", format="localized"),
    "epochs_run": st.column_config.NumberColumn("Epochs run"),
    "train_size": st.column_config.NumberColumn("Fit images", format="localized"),
    "learning_rate": st.column_config.NumberColumn("LR", format="%g"),
    "run_id": st.column_config.TextColumn("Run id"),
}
order = ["label", "test_accuracy", "best_val_accuracy", "best_epoch", "final_loss", "final_val_loss",
         "train_seconds", "params", "task", "arch", "optimizer", "learning_rate", "batch_size", "epochs_run",
         "validation", "train_size", "patience", "seed", "run_id"]
st.dataframe(shown[order], hide_index=True, width="stretch", column_config=COLUMNS, key="compare_table")
st.caption(f"{len(shown)} of {len(table)} runs · click a column header to sort.")

ids = list(shown["run_id"])
by_id = {r.run_id: r for r in all_runs}
names = {rid: f"{by_id[rid].label} · {rid[:6]}" for rid in ids}
tasks_shown = [by_id[rid].config.task for rid in ids]
main_task = max(tasks_shown, key=tasks_shown.count) if ids else None  # the task with most runs
default = [rid for rid in ids if by_id[rid].config.task == main_task][:3]
selected_ids = st.multiselect("Runs to compare", ids, default=default, key="compare_selected",
                              format_func=names.get, placeholder="Pick runs from the table above")
selected = [by_id[rid] for rid in selected_ids]
if not selected:
    st.info("Pick at least one run to draw its history.", icon=":material/info:")
    st.stop()

c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 1.4])
mode = c1.radio("Chart", ["side by side", "overlay"], horizontal=True, key="compare_mode")
x_axis = c2.radio("X-axis", list(charts.X_AXES), horizontal=True, key="compare_x", format_func=charts.X_AXES.get)
metric = c3.selectbox("Metric (overlay)", list(charts.METRICS), index=3, key="compare_metric",
                      format_func=charts.METRICS.get, disabled=mode != "overlay")
smoothing = c4.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="compare_smoothing",
                      help="Exponential moving average; the raw curve stays faint behind the smoothed one.")

if mode == "side by side":
    st.plotly_chart(charts.side_by_side(selected, colors, x=x_axis, smoothing=smoothing), key="compare_side")
    st.caption("Solid: training · dashed: validation · star: best validation accuracy.")
else:
    st.plotly_chart(charts.overlay(selected, metric, colors, x=x_axis, smoothing=smoothing), key="compare_overlay")

st.subheader("Summary")
summary = store.runs_frame(selected)
st.dataframe(summary[order], hide_index=True, width="stretch", column_config=COLUMNS, key="compare_summary")
st.download_button("Download the selected histories (CSV)", charts.histories_frame(selected).to_csv(index=False),
                   file_name="mnistlab-histories.csv", mime="text/csv", icon=":material/download:",
                   key="compare_csv")
