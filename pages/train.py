"""Train: configure a run or a recipe comparison, launch it in the background, watch it."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from mnistlab.datasets.mnist import default_source
from mnistlab.datasets.tasks import TASKS
from mnistlab.errors import BrokenRun, MnistlabError
from mnistlab.models.architectures import ARCHITECTURES, count_params, summarize
from mnistlab.runs import worker as jobs
from mnistlab.runs.config import (
    DEFAULT_FRACTION,
    DEFAULT_LEARNING_RATES,
    FIELDS,
    VALIDATION_SIZES,
    MAX_EPOCHS,
    OPTIMIZERS,
    VALIDATION_LABELS,
    VALIDATION_SCHEMES,
    RunConfig,
)
from mnistlab.runs.store import Run
from mnistlab.runs.worker import Progress, in_progress
from mnistlab.views import charts
from mnistlab.views.text import code, md
from pages import common

LAUNCHED = "train_launched"  # session state: run ids this session launched (not owned by a widget)


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def launch(configs: list[RunConfig]) -> bool:
    try:
        started = jobs.launch(store, configs)
    except (MnistlabError, OSError) as exc:  # limits of a hosted instance, a read-only or full disk
        st.session_state["train_error"] = str(exc)
        return False
    st.session_state.setdefault(LAUNCHED, set()).update(started)
    if started:
        st.toast(f"Started {len(started)} run(s) in the background.", icon=":material/rocket_launch:")
    else:
        st.toast("Nothing to start: these runs are stored or already under way.", icon=":material/info:")
    return True


def show_result(run: Run, note: str) -> None:
    m = run.metrics
    if not run.is_finished:
        st.warning(f"{note} It **diverged**: {md(m['message'])}. Its history is kept below; try a smaller "
                   "learning rate.", icon=":material/trending_up:")
    else:
        st.success(note, icon=":material/check_circle:")
        cols = st.columns(4)
        cols[0].metric("Test accuracy", f"{m['test_accuracy']:.4f}")
        cols[1].metric("Test loss", f"{m['test_loss']:.4f}")
        if m["val_accuracy"] is not None:
            cols[2].metric("Validation accuracy", f"{m['val_accuracy']:.4f}", f"epoch {md(run.kept_epoch)}",
                           delta_color="off")
        cols[3].metric("Training time", duration(m["timings"]["fit_seconds"]))
        st.caption(f"These numbers describe one model: {md(run.kept_description())}.")
    st.plotly_chart(charts.side_by_side([run], common.colors(store.list_runs().runs)), key="result_chart")
    st.caption(f"Run {code(run.run_id)} · {md(m['split']['description'])} · data: {md(m['data']['title'])}")
    links = st.columns(4)
    links[0].page_link("pages/compare.py", label="Compare with other runs", icon=":material/compare_arrows:")
    links[1].page_link("pages/inspect.py", label="Inspect its mistakes", icon=":material/search:")


def progress_card(p: Progress) -> None:
    with st.container(border=True):
        head, button = st.columns([5, 1])
        head.markdown(f"**{md(p.config.label())}** &nbsp; {code(p.run_id)}")
        if store.settings.read_only:
            pass
        elif p.is_active:
            if button.button("Cancel", key=f"cancel_{p.id}", icon=":material/stop_circle:"):
                store.live.request_cancel(p.id)
                st.toast("Cancel requested: it stops within one batch.")
        else:
            if button.button("Dismiss", key=f"dismiss_{p.id}"):
                store.live.dismiss(p.id)
                st.rerun(scope="app")
        if p.status == "queued":
            st.caption(":material/hourglass_empty: Queued: waiting for the runs before it.")
        elif p.status == "training":
            elapsed = time.time() - p.started
            if p.epochs_done:
                per_epoch = sum(h["seconds"] for h in p.history) / p.epochs_done
                left = per_epoch * (p.epochs_total - p.epochs_done)
                text = (f"Epoch {p.epochs_done} of {p.epochs_total} · elapsed {duration(elapsed)}"
                        f" · about {duration(left)} left")
            else:
                text = (f"Epoch 0 of {p.epochs_total} · elapsed {duration(elapsed)} · "
                        f"{md(p.message or 'first epoch')}…")
            st.progress(p.epochs_done / p.epochs_total, text=text)
            if p.history:
                st.plotly_chart(charts.live_history(p.history, p.epochs_total), key=f"live_{p.id}")
        else:
            words = {"cancelled": "Cancelled", "failed": "Failed", "diverged": "Diverged (a loss became NaN)",
                     "interrupted": "Interrupted (its process ended)"}
            st.warning(f"{md(words.get(p.status, p.status))} after {p.epochs_done} epoch(s). "
                       f"{md(p.message, limit=1000)}",
                       icon=":material/warning:")


def live_section() -> None:
    try:
        progress = in_progress(store)
    except MnistlabError as exc:
        st.error(f"The live state cannot be read: {md(exc, limit=1000)}", icon=":material/error:")
        return
    if st.session_state.get("train_watching") and not any(p.is_active for p in progress):
        st.session_state["train_watching"] = False
        st.rerun(scope="app")  # something just finished: show it and stop polling
    if progress:
        st.subheader("In progress")
        for p in progress:
            progress_card(p)


# ---------------------------------------------------------------------------------------
store = common.store()
info = common.source_info()
st.title("Train")
st.caption("Choose a configuration (the defaults are the Keras MNIST recipe's CNN) or launch a whole recipe "
           "comparison. Runs train in a background process and land in the store: the same configuration "
           "never trains twice, and you can switch pages or reload while it runs.")

left, right = st.columns([1, 1], gap="large")
with left:
    task = st.radio("Task", list(TASKS), horizontal=True, key="train_task",
                    format_func=lambda t: {"digits": "Digits 0–9", "parity": "Odd vs even"}[t],
                    help="Digits: 10 classes (softmax). Odd vs even: one sigmoid output, odd = 1.")
    arch = st.selectbox("Architecture", list(ARCHITECTURES), index=1, key="train_arch",
                        format_func=lambda a: f"{a}  ({ARCHITECTURES[a].recipe})")
    c1, c2 = st.columns(2)
    f = FIELDS["epochs"]
    epochs = c1.number_input("Epochs", int(f.lo), int(f.hi), f.default, key="train_epochs", help=f.help)
    f = FIELDS["batch_size"]
    batch_size = c2.number_input("Batch size", int(f.lo), int(f.hi), f.default, key="train_batch", help=f.help)
    c3, c4 = st.columns(2)
    optimizer = c3.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer",
                             help="The Keras recipe uses SGD; chapter 16 uses Adam.")
    f = FIELDS["learning_rate"]  # an open lower bound (> 0): the widget starts just above it
    learning_rate = c4.number_input("Learning rate", min_value=f.lo + 1e-6 if f.open_lo else f.lo, max_value=f.hi,
                                    value=DEFAULT_LEARNING_RATES[optimizer], step=DEFAULT_LEARNING_RATES[optimizer],
                                    format="%.5f", key=f"train_lr_{optimizer}",
                                    help=f"{f.help}; starts at {optimizer}'s Keras default")
    validation = st.selectbox("Validation", VALIDATION_SCHEMES, key="train_validation",
                              format_func=VALIDATION_LABELS.get,
                              help="Hold-out: 50,000 / 10,000 as in the Keras recipe. Fraction: Keras' "
                                   "validation_split. Test set: as one recipe does; optimistic.")
    validation_size = None
    n_train = len(common.dataset(info).x_train)
    if validation == "holdout":
        f = VALIDATION_SIZES["holdout"]  # its default (one sixth) and upper bound depend on the data
        held = st.number_input("Hold-out images", int(f.lo), min(int(f.hi), n_train - 1), n_train // 6,
                               key="train_holdout", help=f"{f.help} (default: {f.unset})")
        validation_size = None if held == n_train // 6 else held
    elif validation == "fraction":
        fraction = st.slider("Validation fraction", 0.05, 0.5, DEFAULT_FRACTION, 0.05, key="train_fraction")
        validation_size = None if fraction == DEFAULT_FRACTION else fraction
    with st.expander("Training-set size, early stopping, seed"):
        train_size = None
        if st.toggle("Use only the first N training images (quick runs)", key="train_limit"):
            f = FIELDS["train_size"]
            train_size = st.number_input("Training images", int(f.lo), min(int(f.hi), n_train), min(1000, n_train),
                                         step=500, key="train_size", help=f.help)
        patience = None
        if st.toggle("Early stopping on validation loss (keeps the best weights)", key="train_early"):
            f = FIELDS["patience"]
            patience = st.number_input("Patience (epochs)", int(f.lo), int(f.hi), 10, key="train_patience",
                                       help=f.help)
        f = FIELDS["seed"]
        seed = st.number_input("Random seed", int(f.lo), int(f.hi), f.default, key="train_seed", help=f.help)

try:
    config = RunConfig(task=task, arch=arch, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                       learning_rate=None if learning_rate == DEFAULT_LEARNING_RATES[optimizer] else learning_rate,
                       validation=validation, validation_size=validation_size, train_size=train_size,
                       patience=patience, seed=seed, data=default_source())
except ValueError as exc:
    config = None
    st.error(f"{md(exc)}. Change it above to launch.", icon=":material/error:")

with right:
    spec = ARCHITECTURES[arch]
    st.markdown(f"**{arch}** — {spec.description}")
    layers = pd.DataFrame(summarize(arch, task))
    layers["output_shape"] = layers["output_shape"].map(lambda s: " × ".join(map(str, s)))
    st.dataframe(layers, hide_index=True, width="stretch",
                 column_config={"layer": "Layer", "output_shape": "Output shape",
                                "params": st.column_config.NumberColumn("Parameters", format="localized")})
    st.markdown(f"**{count_params(arch, task):,} parameters** · input "
                f"{'784 pixels, flattened' if spec.input == 'flat' else '28 × 28 × 1 image'} · "
                f"output: {TASKS[task].units} {TASKS[task].activation}")

st.divider()
run = progress = None
if config is not None:
    try:
        resolved = store.resolve(config)
        progress = store.live.latest(resolved.run_id) if store.root.is_dir() else None
        run_id = resolved.run_id
        run = store.lookup(run_id)
    except BrokenRun as exc:
        st.error(f"This configuration's stored run is broken: {md(exc.reason, limit=1000)}. Delete it on Compare "
                 "(or run `python -m mnistlab doctor --repair`) to train it again.", icon=":material/error:")
        config = None
    except MnistlabError as exc:
        st.error(f"{md(exc, limit=1000)}. Change it above to launch.", icon=":material/error:")
        config = None
if config is not None:
    if run is not None:
        fresh = run_id in st.session_state.get(LAUNCHED, set())
        show_result(run, "Trained just now and stored." if fresh else
                    "Cached: this configuration is already in the store, so it is shown without training.")
    elif progress is not None and progress.is_active:
        st.info("This configuration is training now; follow it below.", icon=":material/pending:")
    elif store.settings.read_only:
        st.info("This instance is read-only: it shows stored runs but does not train. Run mnistlab on your own "
                "machine to train this configuration.", icon=":material/visibility:")
    elif st.button(f"Train {md(config.label())}", type="primary", icon=":material/play_arrow:", key="train_launch"):
        if launch([config]):
            st.session_state["train_watching"] = True
        st.rerun()
    if "train_error" in st.session_state:
        st.error(md(st.session_state.pop("train_error"), limit=1000), icon=":material/error:")


def presets_section() -> None:
    with st.expander("Recipe comparisons: launch a whole recipe with one click", expanded=False):
        st.caption(f"For the task chosen above ({md(task)}). Lower the epochs for a quicker look.")
        a, b = st.columns(2, gap="large")
        with a:
            st.markdown("**Keras MNIST recipe** — `mlp`, `cnn`, `deep_cnn`; SGD, batch 32, hold-out 50,000/10,000")
            recipe_epochs = st.number_input("Epochs", 1, MAX_EPOCHS, 30, key="preset_keras_epochs")
            if st.button("Launch the three recipe models", key="preset_keras", icon=":material/rocket_launch:"):
                recipe = [RunConfig(task=task, arch=name, epochs=recipe_epochs, batch_size=32, optimizer="sgd",
                                    validation="holdout", data=default_source()) for name in ("mlp", "cnn", "deep_cnn")]
                if launch(recipe):
                    st.session_state["train_watching"] = True
                st.rerun()
        with b:
            st.markdown("**Chapter 16** — `mlp_512`, `cnn_dropout`; Adam, batch 200, validation 0.25, "
                        "early stopping patience 10")
            chapter_epochs = st.number_input("Epochs", 1, MAX_EPOCHS, 30, key="preset_ch16_epochs")
            if st.button("Launch the chapter-16 pair", key="preset_ch16", icon=":material/rocket_launch:"):
                if launch([RunConfig(task=task, arch=name, epochs=chapter_epochs, batch_size=200, optimizer="adam",
                                     validation="fraction", validation_size=0.25, patience=10, data=default_source())
                           for name in ("mlp_512", "cnn_dropout")]):
                    st.session_state["train_watching"] = True
                st.rerun()


if not store.settings.read_only:
    presets_section()

has_active = common.active_count() > 0
if has_active:
    st.session_state["train_watching"] = True
st.fragment(live_section, run_every=1.0 if has_active else None)()
