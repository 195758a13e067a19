"""Train: configure a run or a recipe comparison, launch it in the background, watch it.

Layout: the task, then two rows of two columns. On a laptop (1280x800 shows the launch button
without scrolling) they read as one form on the left (architecture, epochs and batch size, then
the optimizer, validation and the rest) and, on the right, the action (the checks before launch
and the launch button, or this configuration's result or progress) above the details (its
curves, runs in progress, the architecture's summary). A phone (under 640 px) stacks the columns
row by row, so there the launch button (and right after a click, the run's progress) comes
straight after the main settings, before the less used ones (390x844 shows it without
scrolling). Recipe comparisons are in an expander under both rows.
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
from mnistlab.views.text import code, md, plural
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
        st.toast(f"Started {plural(len(started), 'run')} in the background.", icon=":material/rocket_launch:")
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
    from mnistlab.views import charts  # Plotly: imported when a chart is drawn, not for the form

    fig = charts.side_by_side([run], {run.run_id: run_color(run.run_id)})
    st.plotly_chart(charts.epoch_axis(fig, epochs_total), key=key)


def run_color(run_id: str) -> str:
    """The run's colour on every page (by age; a run still training comes after every stored one)."""
    from mnistlab.views import charts

    ids = [r.run_id for r in sorted(common.listing(store).runs, key=lambda r: r.metrics.get("created", ""))]
    return charts.run_colors(ids if run_id in ids else [*ids, run_id])[run_id]


def result_head(run: Run, note: str) -> None:
    """Where the launch button would be: that this configuration is stored, and its headline number."""
    m = run.metrics
    if not run.is_finished:
        st.warning(f"{note} It **diverged** after {plural(len(run.history), 'epoch')}: {md(m['message'])}. Its history "
                   "is kept below; try a smaller learning rate.", icon=":material/trending_up:")
    else:
        st.success(f"{note} Test accuracy **{m['test_accuracy']:.4f}**.", icon=":material/check_circle:")


def result_body(run: Run) -> None:
    """Its curves and numbers, where it came from, and where to go next."""
    m = run.metrics
    result_chart(run, run.config.epochs, "result_chart")
    if run.is_finished:
        numbers = [("Test accuracy", f"{m['test_accuracy']:.4f}", None), ("Test loss", f"{m['test_loss']:.4f}", None),
                   ("Val accuracy", f"{m['val_accuracy']:.4f}", f"epoch {md(run.kept_epoch)}")
                   if m["val_accuracy"] is not None else None,
                   ("Training time", duration(m["timings"]["fit_seconds"]), None)]
        for pair in (numbers[:2], numbers[2:]):  # 2 x 2: the numbers fit, on a phone too
            for col, metric in zip(st.columns(2, wrap=False), pair):
                if metric is not None:
                    col.metric(*metric, delta_color="off")
        st.caption(f"These numbers describe one model: {md(run.kept_description())}.")
    st.caption(f"Run {code(run.run_id)} · {md(m['split']['description'])} · data: {md(m['data']['title'])}")
    links = st.columns(2)
    links[0].page_link("pages/compare.py", label="Compare with other runs", icon=":material/compare_arrows:")
    links[1].page_link("pages/inspect.py", label="Inspect its mistakes", icon=":material/search:")


def status_line(run_id: str) -> None:
    """Where this configuration's run is (its place in the queue, or its epoch), in place of the launch
    button: on a phone this is what shows right after a click. Polled every second while it is active."""
    try:
        active = store.live.active()
    except MnistlabError:
        active = []
    mine = next((a for a in active if a.run_id == run_id), None)
    if mine is None:
        st.rerun(scope="app")  # it finished or ended: show its result, or what happened
    if mine.state == "queued":
        place = sum(a.state == "queued" for a in active[:active.index(mine)]) + 1
        st.progress(0.0, text=f":material/hourglass_empty: Queued, number {place} in line: it starts when a "
                              "training slot is free.")
    else:
        done, total = mine.epochs_done, max(mine.epochs_total, 1)
        if done:
            left = sum(h.get("seconds", 0.0) for h in mine.history) / done * (total - done)
            text = f"Epoch {done} of {total} · about {duration(left)} left"
        else:
            text = f"Epoch 0 of {total} · {md(mine.message or 'first epoch')}…"
        st.progress(min(done / total, 1.0), text=text)
    st.caption("It trains in the background: switch pages or reload meanwhile. Its curves, and a Cancel "
               "button, are below.")


def progress_card(p: Progress, position: int) -> None:
    """One queued or training run."""
    with st.container(border=True):
        head, button = st.columns([5, 2])
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
            from mnistlab.views import charts

            st.plotly_chart(charts.live_history(p.history, p.epochs_total, p.config.label(), p.run_id,
                                                run_color(p.run_id)), key=f"live_{p.id}")


def ended_card(p: Progress) -> None:
    """A run that ended without a result: what happened, once, and its partial curves."""
    with st.container(border=True):
        head, button = st.columns([5, 2])
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
            from mnistlab.views import charts

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
st.caption("The defaults are the Keras MNIST recipe's CNN. Runs train in the background: switch pages or reload "
           "while they run.")

task = st.radio("Task", list(TASKS), horizontal=True, key="train_task",
                format_func=lambda t: {"digits": "Digits 0–9", "parity": "Odd vs even"}[t],
                help="Digits: 10 classes (softmax). Odd vs even: one sigmoid output, odd = 1.")
# Row 1: the main settings and the action; row 2: the other settings and the details (see the docstring).
main_settings, action = st.columns([1, 1], gap="large")
with main_settings:
    arch = st.selectbox("Architecture", list(ARCHITECTURES), index=1, key="train_arch",
                        format_func=lambda a: f"{a}  ({ARCHITECTURES[a].recipe})")
    c1, c2 = st.columns(2, wrap=False)  # side by side on a phone too
    epochs = number(c1, "Epochs", FIELDS["epochs"], FIELDS["epochs"].default, "train_epochs", step=1)
    batch_size = number(c2, "Batch size", FIELDS["batch_size"], FIELDS["batch_size"].default, "train_batch",
                        step=1)
more_settings, details = st.columns([1, 1], gap="large")
with more_settings:
    c3, c4 = st.columns(2, wrap=False)
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
    with st.expander("Training-set size, early stopping, seed, precision", icon=":material/tune:"):
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
    problem = "A number in the settings is outside its range (it says which); change it to launch."
else:
    try:
        config = RunConfig(**values, data=default_source())
        problem = None
    except ValueError as exc:
        problem = f"{md(exc)}. Change it in the settings to launch."

with action:
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
            problem = f"{md(exc, limit=1000)}. Change it in the settings to launch."
            config = None
    if problem is not None:
        st.error(problem, icon=":material/error:")
    elif run is not None:
        result_head(run, "Trained just now and stored." if trained_recently(run) else
                    "Cached: this configuration is already in the store, so it is shown without training.")
    elif progress is not None and progress.is_active:
        st.fragment(status_line, run_every=1.0)(resolved.run_id)
    elif store.settings.read_only:
        st.info("This instance is read-only: it shows stored runs but does not train. Run mnistlab on your own "
                "machine to train this configuration.", icon=":material/visibility:")
    else:
        checked = preflight(resolved, common.listing(store).runs, asked_train_size=config.train_size)
        for error in checked.errors:
            st.error(f"Cannot train this: {md(error)}.", icon=":material/block:")
        for warning in checked.warnings:
            st.warning(f"{md(warning[0].upper() + warning[1:])}.", icon=":material/warning:")
        if st.button(f"Train {md(config.label())}", type="primary", icon=":material/play_arrow:",
                     key="train_launch", disabled=not checked.ok, width="stretch"):
            if launch([config]):
                st.session_state["train_watching"] = True
            st.rerun()
        estimate = f" · {checked.estimate.words()}" if checked.estimate is not None else ""
        st.caption(f"Fits on {checked.n_fit:,} images, validates on {checked.n_val:,} · data: {md(info.title)}"
                   f"{md(estimate)}")
    if "train_error" in st.session_state:
        st.error(md(st.session_state.pop("train_error"), limit=1000), icon=":material/error:")

with details:
    if run is not None:
        result_body(run)
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
        # A Markdown table, not st.dataframe: the page then needs no data-grid code in the browser.
        st.markdown("| Layer | Output shape | Parameters |\n|:--|:--|--:|\n" + "\n".join(
            f"| {md(row['layer'])} | {'×'.join(map(str, row['output_shape']))} | {row['params']:,} |"
            for row in summarize(arch, task)))


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
