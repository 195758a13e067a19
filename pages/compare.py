"""Compare: every stored run in one table that is also the picker; the picked runs' histories
one panel per metric (or side by side), seed groups, and what varies across the runs."""

from __future__ import annotations

import dataclasses
import json

import streamlit as st

from mnistlab.analysis import comparison
from mnistlab.views import charts, share
from mnistlab.views.text import code, md, plural
from pages import common

MAX_SIDE_BY_SIDE = 6
CONFIG_FIELDS = ["task", "arch", "epochs", "batch_size", "optimizer", "learning_rate", "validation", "train_size",
                 "patience", "seed", "precision"]
COLOR_FIELDS = ["arch", "optimizer", "batch_size", "learning_rate", "epochs", "task", "seed", "train_size",
                "patience", "validation", "precision"]
FIELD_NAMES = {"arch": "architecture", "batch_size": "batch size", "learning_rate": "learning rate",
               "train_size": "fit images", "run": "run (selection order)"}

st.title("Compare")
st.caption("Every stored run in one table: tick rows to draw their histories. One colour per run, the same in the "
           "table, in every chart and on every page.")

all_runs = common.runs()
store = common.store()
by_id = {r.run_id: r for r in all_runs}
defaults = share.CompareView()

# A shared link (or the first visit) sets the view; afterwards the view writes the link.
link = common.read_link("compare")
if link is not None:
    view, messages = share.parse_compare(link)
    common.show_link_messages(messages)
    resolved, missing = common.resolve_refs(view.runs, by_id)
    st.session_state["compare_missing"] = missing
    if view.runs:
        st.session_state["compare_selected"] = list(dict.fromkeys(r for r in resolved if r is not None))
    st.session_state.update(
        compare_mode=view.mode, compare_x=view.x, compare_smoothing=view.smoothing, compare_log=view.log_y,
        compare_full=view.full_range, compare_groups=view.groups, compare_band=view.band,
        compare_color=view.color_by, compare_tasks=list(view.tasks), compare_archs=list(view.archs),
        compare_optimizers=list(view.optimizers), compare_batches=list(view.batch_sizes),
        compare_statuses=list(view.statuses), compare_search=view.search or "", compare_sweep=view.sweep or "")

deleted = st.session_state.pop("compare_deleted", None)  # said once, after the rerun that removed them
if deleted:
    st.success(f"Deleted {plural(len(deleted), 'run')}: {md('; '.join(deleted), limit=600)}. To undo, import the bundle "
               "you kept (Import runs from a bundle, at the bottom of this page).", icon=":material/delete:")
common.missing_runs_box(st.session_state.get("compare_missing", []), "compare")
if not all_runs:
    common.empty_state("compare")
    common.import_box()
    st.stop()

table = common.shared("runs_frame", all_runs, lambda: store.runs_frame(all_runs))
selected_ids = [rid for rid in st.session_state.get("compare_selected", []) if rid in by_id]
if "compare_selected" not in st.session_state:  # first visit: the three newest runs of the main task
    tasks_all = list(table["task"])
    main_task = max(tasks_all, key=tasks_all.count)
    selected_ids = [rid for rid in table["run_id"] if by_id[rid].config.task == main_task][:3]

# -- filters ---------------------------------------------------------------------------
for key, value in (("compare_tasks", []), ("compare_archs", []), ("compare_optimizers", []),
                   ("compare_batches", []), ("compare_statuses", []), ("compare_search", ""), ("compare_sweep", "")):
    st.session_state.setdefault(key, value)
sweeps = common.sweep_names()
f1, f2, f3, f4, f5, f6 = st.columns([1, 1.2, 1.2, 1, 1, 1.6])
tasks = f1.multiselect("Task", sorted(table["task"].unique()), key="compare_tasks", placeholder="all")
archs = f2.multiselect("Architecture", sorted(table["arch"].unique()), key="compare_archs", placeholder="all")
optimizers = f3.multiselect("Optimizer", sorted(table["optimizer"].unique()), key="compare_optimizers",
                            placeholder="all")
batches = f4.multiselect("Batch size", sorted(int(b) for b in table["batch_size"].unique()), key="compare_batches",
                         placeholder="all")
statuses = f5.multiselect("Status", ["finished", "diverged"], key="compare_statuses", placeholder="all")
search = f6.text_input("Search labels", key="compare_search", placeholder="e.g. adam · bs128",
                       help="Shows the runs whose label or id contains this text.")
sweep = ""
if sweeps:
    if st.session_state["compare_sweep"] not in ["", *sweeps]:
        st.session_state["compare_sweep"] = ""
    sweep = st.selectbox("Sweep", ["", *sweeps], key="compare_sweep",
                         format_func=lambda name: "— all runs —" if name == "" else name)
shown = table
for column, chosen in (("task", tasks), ("arch", archs), ("optimizer", optimizers), ("batch_size", batches),
                       ("status", statuses)):
    if chosen:
        shown = shown[shown[column].isin(chosen)]
if search.strip():
    needle = search.strip().lower()
    shown = shown[shown["label"].str.lower().str.contains(needle, regex=False)
                  | shown["run_id"].str.startswith(needle)]
if sweep:
    members = set(common.sweep_run_ids(sweep))
    shown = shown[shown["run_id"].isin(members)]

# -- the table is the picker -------------------------------------------------------------
order = tuple(shown["run_id"])
state = st.session_state.get("compare_table")
written = st.session_state.get("compare_written")
if state is not None and written is not None:
    rows_now = tuple(state["selection"]["rows"])
    if rows_now != written[1]:  # the user ticked or unticked rows of the table as it was drawn
        before = written[0]
        ticked = [before[i] for i in rows_now if i < len(before)]
        kept = [rid for rid in selected_ids if rid not in before or rid in ticked]
        selected_ids = kept + [rid for rid in ticked if rid not in kept]
st.session_state["compare_selected"] = selected_ids
slots = charts.assign_slots(selected_ids, st.session_state.get("run_slots"))
st.session_state["run_slots"] = slots
rows = tuple(sorted(i for i, rid in enumerate(order) if rid in slots))
# Sent on every run: the browser keeps its ticks only from a run that sets them (a rerun that
# did not would show the table unticked while the charts still draw the selection).
st.session_state["compare_table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
st.session_state["compare_written"] = (order, rows)

COLUMNS = {
    "colour": st.column_config.ImageColumn("", width=28, help="The run's colour in every chart (selected runs)"),
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
    "batch_size": st.column_config.NumberColumn("Batch"),
    "run_id": st.column_config.TextColumn("Run id"),
}
ORDER = ["colour", "label", "status", "test_accuracy", "val_accuracy", "kept_epoch", "loss", "val_loss",
         "train_seconds", "params", "task", "arch", "optimizer", "learning_rate", "batch_size", "epochs_run",
         "validation", "train_size", "patience", "seed", "precision", "run_id"]
picker = shown.assign(colour=[common.swatch(charts.slot_color(slots[rid])) if rid in slots else None
                              for rid in shown["run_id"]])
st.dataframe(picker[ORDER], hide_index=True, width="stretch", height=min(420, 38 + 35 * max(len(picker), 3)),
             column_config=COLUMNS, key="compare_table", on_select="rerun", selection_mode="multi-row",
             placeholder="—")


def _select(ids: list[str]) -> None:
    st.session_state["compare_selected"] = ids


def _select_top(n: int) -> None:
    ranked = shown.dropna(subset=["val_accuracy"]).sort_values("val_accuracy", ascending=False)
    _select(list(ranked["run_id"][:n]))


size = common.store_size(all_runs)
t1, t2, t3, t4 = st.columns([1.1, 1.3, 1, 2.6], vertical_alignment="bottom")
top_n = t1.number_input("Top N", 1, 300, 5, key="compare_top_n", help="How many runs 'Select the top N' picks")
t2.button(f"Select the top {top_n} by val acc", key="compare_select_top", on_click=_select_top, args=(int(top_n),),
          help="Ranks the shown runs by the kept model's validation accuracy. Not by test accuracy: choosing by "
               "the test set would tune on it.", width="stretch")
t3.button("Select all shown", key="compare_select_all", on_click=_select, args=(list(shown["run_id"]),),
          width="stretch")
t4.caption(f"{len(shown):,} shown · {len(selected_ids):,} selected · {len(table):,} runs in the store "
           f"({size}) · click a column header to sort.")
if selected_ids:
    st.button("Clear the selection", key="compare_clear", on_click=_select, args=([],), type="tertiary",
              icon=":material/clear_all:")

selected = [by_id[rid] for rid in selected_ids]
if not selected:
    st.info("Tick rows in the table to draw their histories (or select the top N).", icon=":material/info:")
    common.write_link("compare", share.CompareView().to_params())
    common.import_box()
    st.stop()

# -- the charts ----------------------------------------------------------------------------
for key, value in (("compare_mode", defaults.mode), ("compare_x", defaults.x), ("compare_smoothing", defaults.smoothing),
                   ("compare_log", defaults.log_y), ("compare_full", defaults.full_range),
                   ("compare_groups", defaults.groups), ("compare_band", defaults.band),
                   ("compare_color", defaults.color_by)):
    st.session_state.setdefault(key, value)
varying = comparison.differing_fields(selected)
color_choices = ["run", *[f for f in COLOR_FIELDS if f in varying]]
if st.session_state["compare_color"] not in color_choices:
    st.session_state["compare_color"] = "run"
c1, c2, c3, c4 = st.columns([1.3, 1.2, 1.3, 1.4])
mode = c1.segmented_control("Chart", list(share.COMPARE_MODES), key="compare_mode",
                            help=f"Panels: one per metric, every run overlaid. Side by side: one column per run "
                                 f"(up to {MAX_SIDE_BY_SIDE} runs).") or "panels"
x_axis = c2.segmented_control("X-axis", list(charts.X_AXES), key="compare_x", format_func=charts.X_AXES.get) or "epoch"
smoothing = c3.slider("Smoothing", 0.0, 0.95, step=0.05, key="compare_smoothing",
                      help="Exponential moving average; the raw curve stays faint behind the smoothed one.")
color_by = c4.selectbox("Colour by", color_choices, key="compare_color", format_func=lambda f: FIELD_NAMES.get(f, f),
                        help="One colour per run, or one per value of a parameter that varies (with a legend).")
o1, o2, o3, o4 = st.columns([1, 1, 1, 1.3])
log_y = o1.toggle("Log loss axis", key="compare_log")
full_range = o2.toggle("Full y range", key="compare_full",
                       help="Off: the y range leaves out curves far outside the rest (and says which).")
groups_on = o3.toggle("Group seeds", key="compare_groups",
                      help="Runs equal but for the seed form one group: its mean curve with a band.")
band = o4.segmented_control("Band", list(charts.BANDS), key="compare_band", format_func=charts.BANDS.get,
                            disabled=not groups_on) or "std"

if color_by == "run":
    colors = {rid: charts.slot_color(slot) for rid, slot in slots.items()}
    legends: dict[str, str] = {}
else:
    values = sorted({r.canonical.get(color_by) for r in selected}, key=lambda v: (v is None, str(v)))
    index = {value: i for i, value in enumerate(values)}
    colors = {r.run_id: charts.PALETTE[index[r.canonical.get(color_by)] % len(charts.PALETTE)] for r in selected}
    legends = {r.run_id: f"{FIELD_NAMES.get(color_by, color_by)} = {r.canonical.get(color_by)}" for r in selected}
names = comparison.short_names(selected)
st.caption(md(comparison.shared_caption(selected), limit=1000))

seed_groups = comparison.seed_groups(selected) if groups_on else []
if mode == "side by side" and len(selected) > MAX_SIDE_BY_SIDE:
    st.caption(f":material/info: Side by side holds up to {MAX_SIDE_BY_SIDE} runs; {len(selected)} are selected, "
               "so they are overlaid in panels.")
    mode = "panels"
if mode == "side by side" and not groups_on:
    st.plotly_chart(common.shared("side_by_side", selected, lambda: charts.side_by_side(
        selected, colors, x=x_axis, smoothing=smoothing, names=names), x=x_axis, smoothing=smoothing,
        colors=tuple(colors[r.run_id] for r in selected)), key="compare_side")
    st.caption("Solid: training · dashed: validation · star: the kept epoch (the model whose test metrics the "
               "table shows: the last epoch, or with early stopping the one of lowest validation loss).")
    ranges = {}
else:
    def panels():
        if groups_on:  # a colour per group (or per parameter value), and its legend heading
            firsts = {g.key: g.runs[0].run_id for g in seed_groups}
            group_colors = {key: colors[rid] if legends else charts.slot_color(i)
                            for i, (key, rid) in enumerate(firsts.items())}
            lines = charts.group_lines(seed_groups, group_colors, x=x_axis,
                                       legends={key: legends[rid] for key, rid in firsts.items() if rid in legends})
        else:
            lines = charts.run_lines(selected, colors, names, legends=legends)
        return charts.metric_panels(lines, x=x_axis, smoothing=smoothing, log_y=log_y, full_range=full_range,
                                    band=band)

    figure, ranges = common.shared("panels", selected, panels, x=x_axis, smoothing=smoothing, log=log_y,
                                   full=full_range, groups=groups_on, band=band, color=color_by,
                                   colors=tuple(colors[r.run_id] for r in selected))
    st.plotly_chart(figure, key="compare_panels")
    what = "group" if groups_on else "run"
    keyed = {g.key: g.name for g in seed_groups} if groups_on else names
    for panel, found in ranges.items():
        if found is not None and found.clipped and not full_range:
            left_out = ", ".join(keyed.get(k, k) for k in (*found.above, *found.below))
            st.caption(f":material/unfold_more: **{panel.capitalize()}:** {md(found.note(noun=what))} "
                       f"({md(left_out, limit=300)}). Switch on **Full y range** to show everything.")
    band_words = f" · band: {charts.BANDS[band]} over the seeds" if groups_on else ""
    st.caption("Solid: training · dashed: validation · star: the kept epoch · click a legend entry to hide a "
               f"{what}, double-click to show only it{band_words}.")

if groups_on:
    st.subheader("Seed groups")
    summary = comparison.group_summary(seed_groups)
    st.dataframe(summary.assign(
        test=[comparison.mean_std_text(m, s) for m, s in zip(summary["test_accuracy_mean"], summary["test_accuracy_std"])],
        val=[comparison.mean_std_text(m, s) for m, s in zip(summary["val_accuracy_mean"], summary["val_accuracy_std"])],
    )[["name", "n", "test", "val"]], hide_index=True, width="stretch", key="compare_groups_table",
        column_config={"name": st.column_config.TextColumn("Group", width="large"),
                       "n": st.column_config.NumberColumn("n", help="runs (seeds) in the group"),
                       "test": st.column_config.TextColumn("Test acc (mean ± std)"),
                       "val": st.column_config.TextColumn("Val acc of kept models (mean ± std)")})
    st.caption("Mean ± sample standard deviation over the group's seeds; diverged runs have no test accuracy and "
               "are left out of it.")

# -- what varies across the shown runs --------------------------------------------------------
shown_runs = [by_id[rid] for rid in shown["run_id"]]
# The shown rows are those runs' rows of the runs table: the answer depends on them only.
varying_shown = list(common.shared("varying", shown_runs, lambda: tuple(comparison.varying_parameters(
    shown, CONFIG_FIELDS)), fields=tuple(CONFIG_FIELDS)))
if len(shown) >= 4 and len(varying_shown) >= 2:  # one varying field reads better in the table
    st.subheader("What varies across the shown runs")
    scored = shown[shown["val_accuracy"].notna()]
    if len(scored) >= 12:
        def draw_importance(found) -> None:
            if found is not None:
                st.plotly_chart(common.shared("importance_bars", shown_runs, lambda: charts.importance_bars(
                    list(found.fields), list(found.values), list(found.stds)), fields=tuple(varying_shown)),
                    key="compare_importance")
                st.caption(md(found.caption(), limit=1000))

        with st.columns([1.2, 1])[0]:
            job = common.background("importance", shown_runs, lambda: comparison.importance(shown, varying_shown),
                                    fields=tuple(varying_shown))
            common.when_done(job, draw_importance, "Estimating what mattered")
    # Drawn only once opened: parallel coordinates are WebGL, which a browser without a GPU draws
    # slowly in software, and they would hold up the charts above on every first visit.
    parallel_box = st.expander(f"Parallel coordinates: one line per run through the "
                               f"{plural(len(varying_shown), 'hyperparameter')} that vary",
                               key="compare_parallel_open", on_change="rerun", icon=":material/timeline:")
    if parallel_box.open:
        with parallel_box:
            st.plotly_chart(common.shared("parallel", shown_runs, lambda: charts.parallel_coordinates(
                shown, varying_shown), fields=tuple(varying_shown)), key="compare_parallel")
            unscored = len(shown) - len(scored)
            st.caption("Coloured by the kept model's validation accuracy (the last axis); drag along an axis to "
                       "filter"
                       + (f". {plural(unscored, 'diverged run')} {'has' if unscored == 1 else 'have'} no validation "
                          f"accuracy and {'is' if unscored == 1 else 'are'} left out." if unscored else "."))

# -- share, export, delete -----------------------------------------------------------------
view = share.CompareView(
    runs=tuple(share.RunRef(r.run_id, r.config) for r in selected), mode=mode, x=x_axis, smoothing=float(smoothing),
    log_y=log_y, full_range=full_range, groups=groups_on, band=band, color_by=color_by, tasks=tuple(tasks),
    archs=tuple(archs), optimizers=tuple(optimizers), batch_sizes=tuple(batches), statuses=tuple(statuses),
    search=search.strip(), sweep=sweep)
too_many = len(selected) > share.MAX_RUNS
if too_many:
    params, configs_left_out = dataclasses.replace(view, runs=()).to_params(), False
else:
    prefixes = comparison.unique_prefixes([r.run_id for r in selected], by_id)
    params, configs_left_out = view.link_fit(names=prefixes)
common.write_link("compare", params)


def report_html() -> str:
    from mnistlab.views.report import comparison_report

    return comparison_report(selected, smoothing=float(smoothing), x=x_axis, colors=colors, groups=groups_on,
                             band=band, log_y=log_y, full_range=full_range)


def bundle_zip() -> bytes:
    from mnistlab.runs.bundles import export_bundle

    return export_bundle(store, [r.run_id for r in selected])


def histories_files() -> tuple[str, str]:
    histories = charts.histories_frame(selected)
    return histories.to_csv(index=False), json.dumps(histories.to_dict(orient="records"))


histories_csv, histories_json = common.shared("histories", selected, histories_files)
b1, b2, b3, b4, b5 = st.columns(5)
with b1.popover("Copy share link", icon=":material/share:", width="stretch"):
    if too_many:
        st.warning(f"A link names up to {share.MAX_RUNS} runs; {len(selected):,} are selected. Share the HTML "
                   "report (opens anywhere) or a run bundle (to import) instead; this link keeps the view's "
                   "settings and filters only.", icon=":material/link_off:")
    elif configs_left_out:
        st.caption(":material/info: The link names the runs by id but is too long to carry their "
                   "configurations: a recipient whose store lacks these runs needs the run bundle.")
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
    with st.popover(f"Delete {plural(len(selected), 'run')}…", icon=":material/delete_forever:"):
        st.markdown(f"**Delete {plural(len(selected), 'run')} from the store?** Their folders (history, metrics, "
                    "predictions, weights) are removed for good:")
        st.markdown("\n".join(f"- {md(r.label)} {code(r.run_id)}" for r in selected[:8])
                    + (f"\n- … and {len(selected) - 8} more" if len(selected) > 8 else ""))
        st.download_button("First, keep a copy (run bundle)", bundle_zip, file_name="mnistlab-deleted-runs.zip",
                           mime="application/zip", icon=":material/folder_zip:", key="compare_delete_bundle",
                           help="To undo the delete later, import this bundle (Import runs below, or "
                                "`mnistlab import FILE`).")
        if st.button(f"Delete {plural(len(selected), 'run')} permanently", key="compare_delete",
                     icon=":material/delete_forever:"):
            for run in selected:
                store.delete(run.run_id)
            st.session_state["compare_deleted"] = [f"{r.label} ({r.run_id})" for r in selected]
            st.session_state["compare_selected"] = []
            st.rerun()

common.import_box()
