"""Sweep: a grid of configurations, what it expands to, its launch and progress; the recipes table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mnistlab import sweeps, sweeps_exec
from mnistlab.datasets.mnist import default_source
from mnistlab.errors import MnistlabError
from mnistlab.runs.checks import bf16_supported
from mnistlab.runs.config import FIELDS, arch_field
from mnistlab.runs.worker import max_trainings
from mnistlab.views.text import code, md, plural
from pages import common

CURRENT = "sweep_current"  # session state: the sweep this session launched last (no widget owns it)
LISTED = 5  # sweeps shown under "Sweeps", newest first
LABELS = {"task": "Task", "arch": "Architecture", "optimizer": "Optimizer", "validation": "Validation",
          "epochs": "Epochs", "batch_size": "Batch size", "learning_rate": "Learning rate",
          "validation_size": "Validation size", "train_size": "Training images", "patience": "Early-stopping patience",
          "precision": "Precision"}


def field_input(name: str, column) -> list | str:
    """A multiselect (choices) or a comma-separated list (numbers) for one field of the table."""
    field = arch_field() if name == "arch" else FIELDS[name]
    if field.kind == "choice":
        return column.multiselect(LABELS[name], list(field.choices), default=[field.default], key=f"sweep_{name}",
                                  help=f"{field.help}; pick one or more")
    unset = f"leave empty: {field.unset}" if field.unset else f"default {field.default}"
    text = column.text_input(LABELS[name], "" if field.default is None else str(field.default), key=f"sweep_{name}",
                             help=f"{field.help}; {field.allowed}. Several values: separate them with commas "
                                  f"({unset}).")
    if not text.strip():
        return "none" if field.unset else str(field.default)
    return text


def read_grid() -> tuple[dict, int, str]:
    grid = {}
    columns = st.columns(4)
    for i, name in enumerate(("task", "arch", "optimizer", "validation")):
        grid[name] = field_input(name, columns[i])
    columns = st.columns(4)
    for i, name in enumerate(("epochs", "batch_size", "learning_rate", "train_size")):
        grid[name] = field_input(name, columns[i])
    bf16, _ = bf16_supported()
    columns = st.columns(5 if bf16 else 4)
    grid["validation_size"] = field_input("validation_size", columns[0])
    grid["patience"] = field_input("patience", columns[1])
    if bf16:  # offered only where the CPU computes bfloat16 natively (see Train for the reason otherwise)
        grid["precision"] = field_input("precision", columns[-3])
    seeds = columns[-2].number_input("Seeds", 1, sweeps.MAX_SEEDS, 1, key="sweep_seeds",
                                     help="How many seeds per configuration: 3 means seeds 0, 1 and 2.")
    name = columns[-1].text_input("Sweep name", "", key="sweep_name", max_chars=80,
                                 help="Names the sweep in the list below (default: sweep- and a hash of the grid).")
    return grid, int(seeds), name.strip()


def launch(plan) -> None:
    try:
        started = sweeps_exec.launch_sweep(store, plan)
    except (MnistlabError, OSError) as exc:  # limits of a hosted instance, a read-only or full disk
        st.session_state["sweep_error"] = str(exc)
        return
    st.session_state[CURRENT] = plan.name
    st.toast(f"Queued {plural(len(started), 'run')} of sweep {md(plan.name)}.", icon=":material/rocket_launch:")


def sweep_card(entry: dict) -> None:
    name = entry["name"]
    progress = sweeps_exec.sweep_progress(store, name)
    with st.container(border=True):
        head, *buttons = st.columns([4, 1, 1, 1, 1])
        head.markdown(f"**{md(name)}** · {md(progress.text())}")
        st.progress(progress.done / progress.total if progress.total else 0.0)
        if buttons[0].button("Compare", key=f"sweep_compare_{name}", icon=":material/compare_arrows:",
                             help="Open Compare with this sweep's stored runs selected"):
            chosen = [run_id for run_id in store.live.sweep_run_ids(name) if store.exists(run_id)]
            for key in ("compare_tasks", "compare_archs", "compare_optimizers"):
                st.session_state[key] = []
            st.session_state["compare_selected"] = chosen
            st.switch_page("pages/compare.py")
        if store.settings.read_only:
            return
        if progress.active and buttons[1].button("Cancel", key=f"sweep_cancel_{name}", icon=":material/stop_circle:"):
            count = sweeps_exec.cancel_sweep(store, name)
            st.toast(f"Cancel requested for {plural(count, 'run')}: training ones stop within one batch.")
        if progress.unfinished and buttons[2].button("Retry failed", key=f"sweep_retry_{name}",
                                                     icon=":material/replay:"):
            try:
                again = sweeps_exec.retry_failed(store, name)
            except (MnistlabError, OSError) as exc:
                st.error(md(exc, limit=1000), icon=":material/error:")
            else:
                st.toast(f"Queued {plural(len(again), 'run')} again.")
        if progress.done and not progress.active:
            with buttons[3].popover("Delete", icon=":material/delete:"):
                st.caption(f"Delete the {plural(progress.done, 'stored run')} of this sweep from the store.")
                if st.button("Delete them", key=f"sweep_delete_{name}", type="primary"):
                    try:
                        gone = sweeps_exec.delete_sweep_runs(store, name)
                    except (MnistlabError, OSError) as exc:
                        st.error(md(exc, limit=1000), icon=":material/error:")
                    else:
                        st.toast(f"Deleted {plural(len(gone), 'run')}.")
                        st.rerun(scope="app")


def sweeps_section() -> None:
    try:
        listed = store.live.sweeps()[:LISTED] if store.root.is_dir() else []
    except MnistlabError as exc:
        st.error(f"The live state cannot be read: {md(exc, limit=1000)}", icon=":material/error:")
        return
    if listed:
        st.subheader("Sweeps")
        for entry in listed:
            sweep_card(entry)


def recipes_section() -> None:
    st.subheader("Recipes")
    st.caption("The published recipes' test accuracy beside the stored runs of the same configuration on this data "
               "(mean ± standard deviation over seeds).")
    try:
        report = sweeps_exec.recipes_report(store, default_source())
    except MnistlabError as exc:
        st.error(md(exc, limit=1000), icon=":material/error:")
        return
    table = pd.DataFrame(report["rows"]).drop(columns=["title"])
    st.dataframe(table, hide_index=True, width="stretch", key="sweep_recipes_table",
                 column_config={"recipe": "Recipe", "published": st.column_config.NumberColumn("Published %",
                                                                                                format="%.2f"),
                                "mean": st.column_config.NumberColumn("Ours %", format="%.2f"),
                                "std": st.column_config.NumberColumn("± std", format="%.2f"),
                                "n": st.column_config.NumberColumn("n", help="stored runs (seeds)"),
                                "diff_pp": st.column_config.NumberColumn("Difference (pp)", format="%+.2f")})
    if report["note"]:
        st.info(md(report["note"]), icon=":material/info:")
    if report["missing"] and not store.settings.read_only and st.button(
            f"Train the {plural(len(report['missing']), 'missing recipe')}", key="sweep_recipes_train",
            icon=":material/play_arrow:", help="30 epochs each: about 40 minutes for all eight on 2 cores"):
        wanted = set(report["missing"])
        grids = [dict(r.values) for r in sweeps.RECIPES if r.key in wanted]
        try:
            plan = sweeps_exec.plan_sweep(store, sweeps.make_sweep(grids, data=default_source(),
                                                                   name=sweeps.RECIPES_NAME))
        except (MnistlabError, OSError) as exc:
            st.error(md(exc, limit=1000), icon=":material/error:")
        else:
            launch(plan)


# ---------------------------------------------------------------------------------------
store = common.store()
st.title("Sweep")
st.caption("A grid of configurations: pick one or more values per field, and every combination is one run. "
           "Stored ones are not trained again; the rest are queued for the background worker (as many train at "
           "once as MNISTLAB_MAX_TRAININGS allows) and show on Train as they go.")

if store.root.exists() and not store.root.is_dir():
    st.error(f"The run store {code(store.root)} is a file, not a folder, so no sweep can be planned or stored. "
             "Point `MNISTLAB_STORE` at a folder and restart.", icon=":material/error:")
    st.stop()
grid, seeds, name = read_grid()
plan = None
try:
    sweep = sweeps.make_sweep(grid, seeds=seeds, data=default_source(), name=name or None)
    plan = sweeps_exec.plan_sweep(store, sweep, jobs=max_trainings(store))
except (MnistlabError, ValueError) as exc:
    st.error(f"{md(exc, limit=1000)}. Change it above to launch.", icon=":material/error:")

if plan is not None:
    cells = st.columns(4)
    cells[0].metric("Runs", len(plan.runs))
    cells[1].metric("Stored", len(plan.stored))
    cells[2].metric("To train", len(plan.to_train))
    cells[3].metric("Estimated time", sweeps.duration(plan.estimate_seconds) if plan.estimate_seconds is not None
                    else "–", help="From stored runs of the same architecture; none stored: no estimate")
    st.caption(f"Sweep {code(plan.name)}: {md(plan.summary())}")
    if store.settings.read_only:
        st.info("This instance is read-only: it shows stored runs and sweeps but does not train.",
                icon=":material/visibility:")
    elif plan.to_train and st.button(f"Launch {plural(len(plan.to_train), 'run')}", type="primary", key="sweep_launch",
                                     icon=":material/rocket_launch:"):
        launch(plan)
    if "sweep_error" in st.session_state:
        st.error(md(st.session_state.pop("sweep_error"), limit=1000), icon=":material/error:")

has_active = common.active_count() > 0
st.fragment(sweeps_section, run_every=1.0 if has_active else None)()
recipes_section()
