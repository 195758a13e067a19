"""Compare: stored runs in a table; their training histories side by side or overlaid."""

from __future__ import annotations

import json

import streamlit as st

from mnistlab.views import charts, share
from mnistlab.views.text import code, md
from pages import common

st.title("Compare")
st.caption("Every stored run in one table. Pick runs to see their training histories side by side on shared "
           "axes, or overlaid one metric at a time.")

all_runs = common.runs()
store = common.store()
by_id = {r.run_id: r for r in all_runs}

# A shared link (or the first visit) sets the view; afterwards the view writes the link.
link = common.read_link("compare")
if link is not None:
    view, messages = share.parse_compare(link)
    common.show_link_messages(messages)
    resolved, missing = common.resolve_refs(view.runs, by_id)
    found = [run_id for run_id in resolved if run_id is not None]
    st.session_state["compare_missing"] = missing
    if view.runs:
        for key in ("compare_tasks", "compare_archs", "compare_optimizers"):
            st.session_state[key] = []
        st.session_state["compare_selected"] = found
    st.session_state.update(compare_mode=view.mode, compare_x=view.x, compare_metric=view.metric,
                            compare_smoothing=view.smoothing)

deleted = st.session_state.pop("compare_deleted", None)  # said once, after the rerun that removed them
if deleted:
    st.success(f"Deleted {len(deleted)} run(s): {md('; '.join(deleted), limit=600)}. To undo, import the bundle "
               "you kept (Import runs from a bundle, at the bottom of this page).", icon=":material/delete:")
common.missing_runs_box(st.session_state.get("compare_missing", []), "compare")
if not all_runs:
    common.empty_state("compare")
    common.import_box()
    st.stop()
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
    "status": st.column_config.TextColumn("Status", help="finished, or diverged (a loss became NaN: history only)"),
    "val_accuracy": st.column_config.NumberColumn("Val acc", format="%.4f",
                                                  help="Validation accuracy of the kept model (its epoch is 'Kept')"),
    "kept_epoch": st.column_config.NumberColumn("Kept", help="The epoch whose weights the run keeps: the last, or "
                                                "with early stopping the one of lowest validation loss. Every "
                                                "number in the row describes that model."),
    "val_loss": st.column_config.NumberColumn("Val loss", format="%.4f"),
    "loss": st.column_config.NumberColumn("Train loss", format="%.4f"),
    "train_seconds": st.column_config.NumberColumn("Train s", format="%.1f"),
    "params": st.column_config.NumberColumn("Params", format="localized"),
    "epochs_run": st.column_config.NumberColumn("Epochs run"),
    "train_size": st.column_config.NumberColumn("Fit images", format="localized"),
    "learning_rate": st.column_config.NumberColumn("LR", format="%g"),
    "run_id": st.column_config.TextColumn("Run id"),
}
order = ["label", "status", "test_accuracy", "val_accuracy", "kept_epoch", "loss", "val_loss",
         "train_seconds", "params", "task", "arch", "optimizer", "learning_rate", "batch_size", "epochs_run",
         "validation", "train_size", "patience", "seed", "run_id"]
st.dataframe(shown[order], hide_index=True, width="stretch", column_config=COLUMNS, key="compare_table")
st.caption(f"{len(shown)} of {len(table)} runs · click a column header to sort.")

ids = list(shown["run_id"])
for rid in st.session_state.get("compare_selected", []):  # runs chosen by a link stay choosable
    if rid not in ids and rid in by_id:
        ids.append(rid)
names = {rid: f"{by_id[rid].label} · {rid[:6]}" for rid in ids}
tasks_shown = [by_id[rid].config.task for rid in ids]
main_task = max(tasks_shown, key=tasks_shown.count) if ids else None  # the task with most runs
default = [rid for rid in ids if by_id[rid].config.task == main_task][:3]
if "compare_selected" not in st.session_state:
    st.session_state["compare_selected"] = default
selected_ids = st.multiselect("Runs to compare", ids, key="compare_selected",
                              format_func=names.get, placeholder="Pick runs from the table above")
selected = [by_id[rid] for rid in selected_ids]
if not selected:
    st.info("Pick at least one run to draw its history.", icon=":material/info:")
    common.write_link("compare", {})
    st.stop()

defaults = share.CompareView()
for key, value in (("compare_mode", defaults.mode), ("compare_x", defaults.x), ("compare_metric", defaults.metric),
                   ("compare_smoothing", defaults.smoothing)):
    st.session_state.setdefault(key, value)
c1, c2, c3, c4 = st.columns([1.2, 1.2, 1, 1.4])
mode = c1.radio("Chart", list(share.COMPARE_MODES), horizontal=True, key="compare_mode")
x_axis = c2.radio("X-axis", list(charts.X_AXES), horizontal=True, key="compare_x", format_func=charts.X_AXES.get)
metric = c3.selectbox("Metric (overlay)", list(charts.METRICS), key="compare_metric",
                      format_func=charts.METRICS.get, disabled=mode != "overlay")
smoothing = c4.slider("Smoothing", 0.0, 0.95, step=0.05, key="compare_smoothing",
                      help="Exponential moving average; the raw curve stays faint behind the smoothed one.")

if mode == "side by side":
    st.plotly_chart(common.shared("side_by_side", selected, lambda: charts.side_by_side(
        selected, colors, x=x_axis, smoothing=smoothing), x=x_axis, smoothing=smoothing,
        colors=tuple(colors[r.run_id] for r in selected)), key="compare_side")
    st.caption("Solid: training · dashed: validation · star: the kept epoch (the model whose test metrics the "
               "table shows: the last epoch, or with early stopping the one of lowest validation loss).")
else:
    st.plotly_chart(common.shared("overlay", selected, lambda: charts.overlay(
        selected, metric, colors, x=x_axis, smoothing=smoothing), metric=metric, x=x_axis, smoothing=smoothing,
        colors=tuple(colors[r.run_id] for r in selected)), key="compare_overlay")

st.subheader("Summary")
summary = store.runs_frame(selected)
st.dataframe(summary[order], hide_index=True, width="stretch", column_config=COLUMNS, key="compare_summary")

view = share.CompareView(runs=tuple(share.RunRef(r.run_id, r.config) for r in selected), mode=mode, metric=metric,
                         x=x_axis, smoothing=float(smoothing))
params = view.to_params()
common.write_link("compare", params)


def report_html() -> str:
    from mnistlab.views.report import comparison_report

    return comparison_report(selected, smoothing=float(smoothing), x=x_axis)


def bundle_zip() -> bytes:
    from mnistlab.runs.bundles import export_bundle

    return export_bundle(store, [r.run_id for r in selected])


def histories_files() -> tuple[str, str]:
    histories = charts.histories_frame(selected)
    return histories.to_csv(index=False), json.dumps(histories.to_dict(orient="records"))


histories_csv, histories_json = common.shared("histories", selected, histories_files)
b1, b2, b3, b4, b5 = st.columns(5)
with b1.popover("Copy share link", icon=":material/share:", width="stretch"):
    common.share_box(params)
b2.download_button("HTML report", report_html, file_name="mnistlab-report.html", mime="text/html",
                   icon=":material/description:", key="compare_report", width="stretch",
                   help="Charts, summary and configurations in one file that opens offline.")
b3.download_button("Histories (CSV)", histories_csv, file_name="mnistlab-histories.csv",
                   mime="text/csv", icon=":material/download:", key="compare_csv", width="stretch")
b4.download_button("Histories (JSON)", histories_json,
                   file_name="mnistlab-histories.json", mime="application/json", icon=":material/data_object:",
                   key="compare_json", width="stretch")
b5.download_button("Run bundle (.zip)", bundle_zip, file_name="mnistlab-runs.zip", mime="application/zip",
                   icon=":material/folder_zip:", key="compare_bundle", width="stretch",
                   help="The selected runs with their models, to import on another machine.")

if not store.settings.read_only:  # destructive: named as such, asks once, offers the way back first
    with st.popover(f"Delete {len(selected)} run(s)…", icon=":material/delete_forever:"):
        st.markdown(f"**Delete {len(selected)} run(s) from the store?** Their folders (history, metrics, "
                    "predictions, weights) are removed for good:")
        st.markdown("\n".join(f"- {md(r.label)} {code(r.run_id)}" for r in selected[:8])
                    + (f"\n- … and {len(selected) - 8} more" if len(selected) > 8 else ""))
        st.download_button("First, keep a copy (run bundle)", bundle_zip, file_name="mnistlab-deleted-runs.zip",
                           mime="application/zip", icon=":material/folder_zip:", key="compare_delete_bundle",
                           help="To undo the delete later, import this bundle (Import runs below, or "
                                "`mnistlab import FILE`).")
        if st.button(f"Delete {len(selected)} run(s) permanently", key="compare_delete",
                     icon=":material/delete_forever:"):
            for run in selected:
                store.delete(run.run_id)
            st.session_state["compare_deleted"] = [f"{r.label} ({r.run_id})" for r in selected]
            st.session_state.pop("compare_selected", None)
            st.rerun()

common.import_box()
