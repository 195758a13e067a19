"""Train: configure a run or a recipe comparison, launch it in the background, watch it.

Layout (1280x800 shows it without scrolling): the form on the left; on the right what the
configuration will do (checks before launch), the launch button, then the result or the live
progress, and the architecture's summary below. Recipe comparisons are in an expander under both.
"""

from __future__ import annotations

import time

import streamlit as st

from mnistlab.datasets.mnist import default_source
from mnistlab.datasets.tasks import TASKS
from mnistlab.errors import BrokenRun, MnistlabError
from mnistlab.models.architectures import ARCHITECTURES, count_params, flops, summarize
from mnistlab.runs import worker as jobs
from mnistlab.runs.checks import bf16_supported, preflight
from mnistlab.runs.config import (
    DEFAULT_FRACTION,
    DEFAULT_LEARNING_RATES,
    FIELDS,
    MAX_EPOCHS,
    OPTIMIZERS,
    PRECISIONS,
    VALIDATION_LABELS,
    VALIDATION_SCHEMES,
    VALIDATION_SIZES,
    Field,
    RunConfig,
)
from mnistlab.runs.store import Run
from mnistlab.runs.worker import Progress, in_progress
from mnistlab.views import charts
from mnistlab.views.text import code, md
from pages import common

LAUNCHED = "train_launched"  # session state: run ids this session launched (not owned by a widget)
SEEN = "train_seen_training"  # session state: run ids this session saw queued or training
ENDED = {"cancelled": "Cancelled", "failed": "Failed", "diverged": "Diverged (a loss became NaN or infinite)",
         "interrupted": "Interrupted (its process ended)"}


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


def number(container, label: str, field: Field, value, key: str, hi: float | None = None, **kwargs):
    """A number field that shows its range and says when a value is outside it (never clamps it).

    Returns the value, or None when it is out of range (the launch is then off)."""
    hi = field.hi if hi is None else min(hi, field.hi)
    allowed = (f"an integer from {int(field.lo):,} to {int(hi):,}" if field.kind == "int" else
               f"a number {'above' if field.open_lo else 'from'} {field.lo:g} to {hi:g}")
    given = container.number_input(label, value=value, key=key, help=f"{field.help}. Allowed: {allowed}.",
                                    **kwargs)
    ok = given is not None and given <= hi and (given > field.lo if field.open_lo else given >= field.lo)
    if field.kind == "int" and ok:
        ok = float(given).is_integer()
    if not ok:
        container.caption(f":red[:material/error: {md(label)} must be {allowed}.]")
        return None
    return int(given) if field.kind == "int" else float(given)


def result_chart(run: Run, epochs_total: int, key: str):
    """The same chart while a run trains and when it has finished: side_by_side, its colour, all epochs."""
    fig = charts.side_by_side([run], {run.run_id: run_color(run.run_id)})
    st.plotly_chart(charts.epoch_axis(fig, epochs_total), key=key)


def run_color(run_id: str) -> str:
    """The run's colour on every page (by age; a run still training comes after every stored one)."""
    ids = [r.run_id for r in sorted(store.list_runs().runs, key=lambda r: r.metrics.get("created", ""))]
    return charts.run_colors(ids if run_id in ids else [*ids, run_id])[run_id]


def show_result(run: Run, note: str) -> None:
    m = run.metrics
    if not run.is_finished:
        st.warning(f"{note} It **diverged** after {len(run.history)} epoch(s): {md(m['message'])}. Its history "
                   "is kept below; try a smaller learning rate.", icon=":material/trending_up:")
    else:
        st.success(note, icon=":material/check_circle:")
        cols = st.columns(4)
        cols[0].metric("Test accuracy", f"{m['test_accuracy']:.4f}")
        cols[1].metric("Test loss", f"{m['test_loss']:.4f}")
        if m["val_accuracy"] is not None:
            cols[2].metric("Val accuracy", f"{m['val_accuracy']:.4f}", f"epoch {md(run.kept_epoch)}",
                           delta_color="off")
        cols[3].metric("Training time", duration(m["timings"]["fit_seconds"]))
        st.caption(f"These numbers describe one model: {md(run.kept_description())}.")
    result_chart(run, run.config.epochs, "result_chart")
    st.caption(f"Run {code(run.run_id)} · {md(m['split']['description'])} · data: {md(m['data']['title'])}")
    links = st.columns(2)
    links[0].page_link("pages/compare.py", label="Compare with other runs", icon=":material/compare_arrows:")
    links[1].page_link("pages/inspect.py", label="Inspect its mistakes", icon=":material/search:")


def progress_card(p: Progress, position: int) -> None:
    """One queued or training run."""
    with st.container(border=True):
        head, button = st.columns([5, 1.3])
        head.markdown(f"**{md(p.config.label())}** &nbsp; {code(p.run_id)}")
        if not store.settings.read_only and button.button("Cancel", key=f"cancel_{p.id}",
                                                          icon=":material/stop_circle:"):
            store.live.request_cancel(p.id)
            st.toast("Cancel requested: it stops within one batch.")
        if p.status == "queued":
            st.caption(f":material/hourglass_empty: Queued, number {position} in line: it starts when a "
                       "training slot is free.")
            return
        elapsed = time.time() - p.started
        if p.epochs_done:
            per_epoch = sum(h["seconds"] for h in p.history) / p.epochs_done
            left = per_epoch * (p.epochs_total - p.epochs_done)
            text = (f"Epoch {p.epochs_done} of {p.epochs_total} · elapsed {duration(elapsed)}"
                    f" · about {duration(left)} left")
        else:
            text = f"Epoch 0 of {p.epochs_total} · elapsed {duration(elapsed)} · {md(p.message or 'first epoch')}…"
        st.progress(p.epochs_done / p.epochs_total, text=text)
        if p.history:
            st.plotly_chart(charts.live_history(p.history, p.epochs_total, p.config.label(), p.run_id,
                                                run_color(p.run_id)), key=f"live_{p.id}")


def ended_card(p: Progress) -> None:
    """A run that ended without a result: what happened, once, and its partial curves."""
    with st.container(border=True):
        head, button = st.columns([5, 1.3])
        head.markdown(f"**{md(p.config.label())}** &nbsp; {code(p.run_id)}")
        if not store.settings.read_only and button.button("Dismiss", key=f"dismiss_{p.id}"):
            store.live.dismiss(p.id)
            st.rerun(scope="app")
        what = ENDED.get(p.status, p.status.capitalize())
        stopped = (f"after epoch {p.epochs_done} of {p.epochs_total}" if p.epochs_done else
                   f"before its first epoch (of {p.epochs_total})")
        detail = (p.message or "").strip()
        repeats = not detail or detail.lower().startswith(p.status) or p.status in ("cancelled", "interrupted")
        st.warning(f"{md(what)} {stopped}." + ("" if repeats else f" {md(detail, limit=600)}"),
                   icon=":material/warning:")
        if p.history:
            st.plotly_chart(charts.live_history(p.history, p.epochs_total, p.config.label(), p.run_id,
                                                run_color(p.run_id)), key=f"ended_{p.id}")


def live_section() -> None:
    try:
        progress = in_progress(store)
    except MnistlabError as exc:
        st.error(f"The live state cannot be read: {md(exc, limit=1000)}", icon=":material/error:")
        return
    active = [p for p in progress if p.is_active]  # in the order they will run (training first)
    st.session_state.setdefault(SEEN, set()).update(p.run_id for p in active)
    ended = [p for p in progress if not p.is_active]
    if st.session_state.get("train_watching") and not active:
        st.session_state["train_watching"] = False
        st.rerun(scope="app")  # something just finished or ended: show it and stop polling
    if active:
        st.markdown(f"##### In progress ({len(active)})")
        queued = 0
        for p in active:
            queued += p.status == "queued"
            progress_card(p, queued)
    if ended:
        st.markdown("##### Ended without a result")
        for p in ended:
            ended_card(p)


def trained_recently(run: Run) -> bool:
    """Launched by this session, or seen in training by it (a reload, a launch on another page): a run
    that was already stored when this session first looked is cached."""
    return run.run_id in st.session_state.get(LAUNCHED, set()) | st.session_state.get(SEEN, set())


# ---------------------------------------------------------------------------------------
store = common.store()
info = common.source_info()
n_train = info.n_train or len(common.dataset(info).x_train)
st.title("Train")
st.caption("Choose a configuration (the defaults are the Keras MNIST recipe's CNN) or launch a whole recipe "
           "comparison. Runs train in a background process: switch pages or reload while they run.")

left, right = st.columns([1, 1], gap="large")
with left:
    task = st.radio("Task", list(TASKS), horizontal=True, key="train_task",
                    format_func=lambda t: {"digits": "Digits 0–9", "parity": "Odd vs even"}[t],
                    help="Digits: 10 classes (softmax). Odd vs even: one sigmoid output, odd = 1.")
    arch = st.selectbox("Architecture", list(ARCHITECTURES), index=1, key="train_arch",
                        format_func=lambda a: f"{a}  ({ARCHITECTURES[a].recipe})")
    c1, c2 = st.columns(2)
    epochs = number(c1, "Epochs", FIELDS["epochs"], FIELDS["epochs"].default, "train_epochs", step=1)
    batch_size = number(c2, "Batch size", FIELDS["batch_size"], FIELDS["batch_size"].default, "train_batch",
                        step=1)
    c3, c4 = st.columns(2)
    optimizer = c3.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer",
                             help="The Keras recipe uses SGD; chapter 16 uses Adam.")
    default_lr = DEFAULT_LEARNING_RATES[optimizer]
    learning_rate = number(c4, "Learning rate", FIELDS["learning_rate"], default_lr, f"train_lr_{optimizer}",
                           step=default_lr, format="%.5f")
    validation = st.selectbox("Validation", VALIDATION_SCHEMES, key="train_validation",
                              format_func=VALIDATION_LABELS.get,
                              help=f"Hold-out: the last sixth of the training images ({n_train - n_train // 6:,} / "
                                   f"{n_train // 6:,} here; 50,000 / 10,000 on full MNIST, as in the Keras recipe). "
                                   "Fraction: Keras' validation_split. Test set: as one recipe does; optimistic.")
    validation_size = None
    if validation == "holdout":
        held = number(st, "Hold-out images", VALIDATION_SIZES["holdout"], n_train // 6, "train_holdout",
                      hi=n_train - 1, step=100)
        validation_size = None if held == n_train // 6 else held
        if held is None:
            validation_size = "invalid"
    elif validation == "fraction":
        fraction = st.slider("Validation fraction", 0.05, 0.5, DEFAULT_FRACTION, 0.05, key="train_fraction")
        validation_size = None if fraction == DEFAULT_FRACTION else fraction
    with st.expander("Training-set size, early stopping, seed, precision"):
        train_size = None
        if st.toggle("Use only the first N training images (quick runs)", key="train_limit"):
            train_size = number(st, "Training images", FIELDS["train_size"], min(1000, n_train), "train_size",
                                hi=n_train, step=500)
            train_size = "invalid" if train_size is None else train_size
        patience = None
        if st.toggle("Early stopping on validation loss (keeps the best weights)", key="train_early"):
            patience = number(st, "Patience (epochs)", FIELDS["patience"], 10, "train_patience", step=1)
            patience = "invalid" if patience is None else patience
        seed = number(st, "Random seed", FIELDS["seed"], FIELDS["seed"].default, "train_seed", step=1)
        bf16_ok, bf16_reason = bf16_supported()
        precision = FIELDS["precision"].default
        if bf16_ok:
            precision = st.radio("Precision", PRECISIONS, horizontal=True, key="train_precision",
                                 format_func={"float32": "float32 (the recipes')",
                                              "bfloat16": "bfloat16 (mixed, faster)"}.get,
                                 help=f"{FIELDS['precision'].help}. Offered because {bf16_reason}. A bfloat16 "
                                      "run is another run (its own id) than its float32 twin.")
        else:
            st.caption(f"Precision: float32. bfloat16 is not offered: {md(bf16_reason)}.")

values = dict(task=task, arch=arch, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
              learning_rate=None if learning_rate == default_lr else learning_rate, validation=validation,
              validation_size=validation_size, train_size=train_size, patience=patience, seed=seed,
              precision=precision)
config = None
if any(v is None for v in (epochs, batch_size, learning_rate, seed)) or "invalid" in values.values():
    problem = "A number on the left is outside its range (it says which); change it to launch."
else:
    try:
        config = RunConfig(**values, data=default_source())
        problem = None
    except ValueError as exc:
        problem = f"{md(exc)}. Change it on the left to launch."

with right:
    run = progress = resolved = None
    if config is not None:
        try:
            resolved = store.resolve(config)
            progress = store.live.latest(resolved.run_id) if store.root.is_dir() else None
            run = store.lookup(resolved.run_id)
        except BrokenRun as exc:
            problem = (f"This configuration's stored run is broken: {md(exc.reason, limit=1000)}. Delete it on "
                       "Compare (or run `mnistlab doctor --repair`) to train it again.")
            config = None
        except MnistlabError as exc:
            problem = f"{md(exc, limit=1000)}. Change it on the left to launch."
            config = None
    if problem is not None:
        st.error(problem, icon=":material/error:")
    elif run is not None:
        show_result(run, "Trained just now and stored." if trained_recently(run) else
                    "Cached: this configuration is already in the store, so it is shown without training.")
    elif progress is not None and progress.is_active:
        st.info("This configuration is training now: its progress is below.", icon=":material/pending:")
    elif store.settings.read_only:
        st.info("This instance is read-only: it shows stored runs but does not train. Run mnistlab on your own "
                "machine to train this configuration.", icon=":material/visibility:")
    else:
        checked = preflight(resolved, store.list_runs().runs, asked_train_size=config.train_size)
        for error in checked.errors:
            st.error(f"Cannot train this: {md(error)}.", icon=":material/block:")
        for warning in checked.warnings:
            st.warning(f"{md(warning[0].upper() + warning[1:])}.", icon=":material/warning:")
        estimate = f" · {checked.estimate.words()}" if checked.estimate is not None else ""
        st.caption(f"Fits on {checked.n_fit:,} images, validates on {checked.n_val:,} · data: {md(info.title)}"
                   f"{md(estimate)}")
        if st.button(f"Train {md(config.label())}", type="primary", icon=":material/play_arrow:",
                     key="train_launch", disabled=not checked.ok, width="stretch"):
            if launch([config]):
                st.session_state["train_watching"] = True
            st.rerun()
    if "train_error" in st.session_state:
        st.error(md(st.session_state.pop("train_error"), limit=1000), icon=":material/error:")

    has_active = common.active_count() > 0
    if has_active:
        st.session_state["train_watching"] = True
    st.fragment(live_section, run_every=1.0 if has_active else None)()

    spec = ARCHITECTURES[arch]
    with st.expander(f"{arch}: {count_params(arch, task):,} parameters · {spec.description}",
                     icon=":material/account_tree:"):
        st.markdown(f"**{count_params(arch, task):,} parameters** · "
                    f"{flops(arch, task) / 1e6:,.2f} MFLOPs per image forward (training ≈ 3×) · input "
                    f"{'784 pixels, flattened' if spec.input == 'flat' else '28 × 28 × 1 image'} · "
                    f"output: {TASKS[task].units} {TASKS[task].activation}")
        st.dataframe([{"Layer": row["layer"], "Output shape": " × ".join(map(str, row["output_shape"])),
                       "Parameters": f"{row['params']:,}"} for row in summarize(arch, task)],
                     hide_index=True, width="stretch")


def presets_section() -> None:
    holdout = f"hold-out {n_train - n_train // 6:,} / {n_train // 6:,}"
    with st.expander("Recipe comparisons: launch a whole recipe with one click", expanded=False,
                     icon=":material/rocket_launch:"):
        st.caption(f"For the task chosen above ({md(task)}), on this machine's data: {md(info.title)}, "
                   f"{n_train:,} training and {info.n_test or 0:,} test images. Lower the epochs for a quicker look.")
        if info.kind == "sample":
            st.caption("The recipes were written for the full MNIST (60,000 / 10,000): start the app with "
                       "`MNISTLAB_MNIST=/path/to/mnist.npz` to use it.")
        a, b = st.columns(2, gap="large")
        with a:
            st.markdown(f"**Keras MNIST recipe** — `mlp`, `cnn`, `deep_cnn`; SGD, batch 32, {holdout}")
            recipe_epochs = st.number_input("Epochs", 1, MAX_EPOCHS, 30, key="preset_keras_epochs",
                                            help=f"An integer from 1 to {MAX_EPOCHS:,}.")
            if st.button("Launch the three recipe models", key="preset_keras", icon=":material/rocket_launch:"):
                recipe = [RunConfig(task=task, arch=name, epochs=recipe_epochs, batch_size=32, optimizer="sgd",
                                    validation="holdout", data=default_source()) for name in ("mlp", "cnn", "deep_cnn")]
                if launch(recipe):
                    st.session_state["train_watching"] = True
                st.rerun()
        with b:
            fit = int(n_train * (1 - 0.25))
            st.markdown(f"**Chapter 16** — `mlp_512`, `cnn_dropout`; Adam, batch 200, validation 0.25 "
                        f"({fit:,} / {n_train - fit:,}), early stopping patience 10")
            chapter_epochs = st.number_input("Epochs", 1, MAX_EPOCHS, 30, key="preset_ch16_epochs",
                                             help=f"An integer from 1 to {MAX_EPOCHS:,}.")
            if st.button("Launch the chapter-16 pair", key="preset_ch16", icon=":material/rocket_launch:"):
                if launch([RunConfig(task=task, arch=name, epochs=chapter_epochs, batch_size=200, optimizer="adam",
                                     validation="fraction", validation_size=0.25, patience=10, data=default_source())
                           for name in ("mlp_512", "cnn_dropout")]):
                    st.session_state["train_watching"] = True
                st.rerun()


if not store.settings.read_only:
    presets_section()
