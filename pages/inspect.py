"""Inspect: what one run gets wrong, and what a second run fixes or breaks."""

from __future__ import annotations

import streamlit as st

from mnistlab.analysis import calibration, evaluation, statistics
from mnistlab.analysis import epochs as per_epoch
from mnistlab.datasets.tasks import get_task
from mnistlab.errors import BrokenRun
from mnistlab.views import charts, share
from mnistlab.views.text import code, md
from pages import common

GALLERY_SIZE = 40
ANY = -1  # the class filters' "any" (None in a selectbox's state would show as no choice)
NBSP = "\u00a0"  # in gallery captions: they wrap only where we want (two short lines under a 72 px digit)

st.title("Inspect")
st.caption("The confusion matrix of a run, its per-class scores, and the test digits it gets wrong. "
           "Click a cell of the matrix to see those digits.")

all_runs = common.runs(finished=True)  # a diverged run has no predictions to inspect
by_id = {r.run_id: r for r in all_runs}
link = common.read_link("inspect")
if link is not None:
    view, messages = share.parse_inspect(link)
    common.show_link_messages(messages)
    named = [(ref, key) for ref, key in ((view.run, "inspect_run"), (view.second, "inspect_second")) if ref]
    resolved, missing = common.resolve_refs([ref for ref, _ in named], by_id)
    for (_, key), local in zip(named, resolved):
        if local is not None:
            st.session_state[key] = local
    st.session_state["inspect_missing"] = missing
    st.session_state.update(inspect_true=ANY if view.true_class is None else view.true_class,
                            inspect_pred=ANY if view.predicted_class is None else view.predicted_class,
                            inspect_normalized=view.normalized)
    st.session_state["inspect_link_epoch"] = view.epoch
    st.session_state.pop("inspect_epoch_run", None)  # the slider starts where the link says
common.missing_runs_box(st.session_state.get("inspect_missing", []), "inspect")
if not all_runs:
    common.empty_state("inspect")
    st.stop()

share_slot = st.container()
c1, c2 = st.columns(2)
# Best first: validation accuracy of the kept model (choosing by test accuracy would tune on the test
# set), test accuracy as the tie-break. The page opens on the best run against the second best.
ranked = sorted(all_runs, key=lambda r: (r.metrics["val_accuracy"] if r.metrics["val_accuracy"] is not None
                                         else -1.0, r.metrics["test_accuracy"]), reverse=True)
with c1:
    run = common.run_picker("Run A (best validation accuracy first)", ranked, key="inspect_run")
with c2:
    others = [r for r in ranked if r.run_id != run.run_id and r.config.task == run.config.task
              and r.metrics["data"]["fingerprint"] == run.metrics["data"]["fingerprint"]]
    second = common.run_picker("Compare with run B (optional)", others, key="inspect_second", allow_none=True,
                               index=1, help="Another run of the same task on the same test set: is it really "
                                             "better or worse than run A? (at the bottom of the page)")

for chosen in (run, second):
    if chosen is None:
        continue
    try:
        chosen.predictions()  # the arrays are checked when a run is opened
    except BrokenRun as exc:
        st.error(f"Run {code(chosen.run_id)} cannot be shown: {md(exc.reason, limit=1000)}. Pick another run; "
                 "`python -m mnistlab doctor` lists what is broken.", icon=":material/error:")
        st.stop()

task = get_task(run.config.task)
classes = list(range(task.n_classes))
data = common.dataset_for_run(run)


def gallery(frame, caption) -> None:
    """Misclassified digits as small images with their captions."""
    if frame.empty:
        st.caption("No digits here.")
        return
    if data is None:
        st.warning("The images of this run's data source are not on this machine; only the table is shown.")
        st.dataframe(frame, hide_index=True)
        return
    rows = frame.head(GALLERY_SIZE)
    st.image(common.digit_images(data, rows["index"]), caption=[caption(r) for r in rows.itertuples()], width=72)
    if len(frame) > GALLERY_SIZE:
        st.caption(f"Showing {GALLERY_SIZE} of {len(frame)}.")


# -- every epoch of the run: the slider (runs stored before epochs.npz have none) --------------
try:
    has_epochs = run.epochs() is not None
except BrokenRun as exc:
    st.warning(f"This run's per-epoch answers cannot be read ({md(exc.reason, limit=500)}); showing the kept "
               "model only.", icon=":material/warning:")
    has_epochs = False
epoch = run.kept_epoch
# Another run: the slider starts at the link's epoch, or at the kept one.
if has_epochs and run.metrics["epochs_run"] > 1 and st.session_state.get("inspect_epoch_run") != run.run_id:
    wanted = st.session_state.pop("inspect_link_epoch", None)
    st.session_state["inspect_epoch_run"] = run.run_id
    st.session_state["inspect_epoch"] = (wanted if wanted is not None and wanted <= run.metrics["epochs_run"]
                                         else run.kept_epoch)
    if wanted is not None and wanted > run.metrics["epochs_run"]:
        st.caption(f":material/link_off: The link asks for epoch {wanted:,}; this run has "
                   f"{run.metrics['epochs_run']:,}, so its kept epoch is shown.")
slider_column, toggle_column = st.columns([3, 1], gap="large", vertical_alignment="bottom")
if has_epochs and run.metrics["epochs_run"] > 1:
    epoch = slider_column.slider(
        f"Epoch (the run keeps epoch {run.kept_epoch})", 1, run.metrics["epochs_run"], key="inspect_epoch",
        help="Drag to see the confusion matrix, the scores and the mistakes of the model as it was at the end of "
             f"that epoch. The run keeps the weights of epoch {run.kept_epoch} (its kept model); the two-run "
             "comparison below always uses the kept models.")
elif not has_epochs:
    slider_column.caption("This run was stored before mnistlab kept the test answers of every epoch, so only its "
                          "kept model is shown (train it again for the epoch slider).")
normalized = toggle_column.toggle("Row-normalised", key="inspect_normalized",
                                  help="Each row divided by its number of digits: the share of each true digit "
                                       "given each answer (the diagonal is the recall per class).")
at_kept = epoch == run.kept_epoch

left, right = st.columns([1, 1], gap="large")
with left:
    of_epochs = f"epoch {epoch} of {run.metrics['epochs_run']}"
    st.markdown(f"**Confusion matrix** — {'the kept model, ' if at_kept else ''}{of_epochs}"
                + (" (row-normalised: recall per class)" if normalized else " (test digits)"))
    matrix_chart = common.shared("confusion", [run], lambda: charts.confusion_heatmap(
        evaluation.confusion_matrix(run, normalize=normalized) if at_kept else
        per_epoch.confusion_matrix(run, epoch, normalize=normalized),
        normalized, selectable=True), normalized=normalized, epoch=epoch)
    event = st.plotly_chart(matrix_chart,
                            on_select="rerun", selection_mode="points", key="inspect_matrix")
    points = event.selection.points if event else []
    labels = list(task.class_names)
    cells = [(labels.index(str(p["y"])), labels.index(str(p["x"]))) for p in points
             if str(p.get("y")) in labels and str(p.get("x")) in labels]
    if cells and st.session_state.get("inspect_last_cell") != cells[0]:  # a new click sets the filters
        st.session_state["inspect_last_cell"] = cells[0]
        st.session_state["inspect_true"], st.session_state["inspect_pred"] = cells[0]
    st.markdown("**Per-class precision, recall and F1**")
    st.dataframe(common.shared("per_class_report", [run], lambda: evaluation.per_class_report(run) if at_kept else
                               per_epoch.per_class_report(run, epoch), epoch=epoch),
                 width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in ("precision", "recall", "f1")})

with right:
    st.markdown("**Misclassified test digits** — most confident mistakes first")
    f1, f2 = st.columns(2)
    name = lambda c: "any" if c == ANY else task.class_names[c]
    for key in ("inspect_true", "inspect_pred"):  # a class this task does not have (e.g. from a link)
        if st.session_state.get(key) not in [ANY] + classes:
            st.session_state[key] = ANY
    true_choice = f1.selectbox("True class", [ANY] + classes, key="inspect_true", format_func=name)
    predicted_choice = f2.selectbox("Predicted class", [ANY] + classes, key="inspect_pred", format_func=name)
    true_class = None if true_choice == ANY else true_choice
    predicted_class = None if predicted_choice == ANY else predicted_choice
    wrong = evaluation.misclassified(run, true_class=true_class, predicted_class=predicted_class) if at_kept else \
        per_epoch.misclassified(run, epoch, true_class=true_class, predicted_class=predicted_class)
    if true_class is not None and true_class == predicted_class:
        st.caption("That cell is the diagonal: those digits are right, not mistakes.")
    st.caption(f"{len(wrong)} mistakes match.")
    gallery(wrong, lambda r: f"#{r.index}{NBSP}{task.class_names[r.true]}→{task.class_names[r.predicted]} "
                             f"{r.confidence:.0%}")

if has_epochs and run.metrics["epochs_run"] > 1:
    # Built only once opened: a closed expander's charts would still be sent, and a fresh browser
    # would draw them before the page is ready.
    through = st.expander("Through the epochs: per-digit accuracy, digits learned late and forgotten",
                          key="inspect_epochs_open", on_change="rerun")
    if through.open:
        with through:
            st.plotly_chart(common.shared("epoch_curves", [run], lambda: charts.epoch_accuracy_curves(
                                per_epoch.accuracy_curves(run), run.kept_epoch, epoch), epoch=epoch),
                            key="inspect_epoch_curves")
            learned, forgotten = per_epoch.learned_and_forgotten(run, epoch)
            late = learned[learned["learned_at"] > 1]
            g1, g2 = st.columns(2, gap="large")
            with g1:
                st.markdown(f"**Learned late: {len(late):,}** — right at epoch {epoch}, but only since a later "
                            "epoch than the first (under each digit: since which epoch; latest first)")
                gallery(late.rename(columns={"true": "t"}), lambda r: f"#{r.index}{NBSP}{task.class_names[r.t]} "
                                                                      f"since{NBSP}{r.learned_at}")
            with g2:
                st.markdown(f"**Forgotten: {len(forgotten):,}** — right at an earlier epoch, wrong at epoch "
                            f"{epoch} (under each digit: the last epoch it was right)")
                gallery(forgotten.rename(columns={"true": "t"}), lambda r: f"#{r.index}{NBSP}{task.class_names[r.t]} "
                                                                           f"until{NBSP}{r.last_right}")

calibration_box = st.expander("How much to trust its confidence: calibration", key="inspect_calibration_open",
                              on_change="rerun")  # built only once opened, as the one above
if calibration_box.open:
    with calibration_box:
        def calibration_charts():
            y_true, y_pred, probabilities = evaluation.predicted(run)
            confidence = probabilities[range(len(y_pred)), y_pred]
            correct = y_pred == y_true
            ece = calibration.expected_calibration_error(confidence, correct)
            return ece, charts.reliability_diagram(calibration.reliability(confidence, correct), ece,
                                                   title="Reliability diagram"), \
                charts.confidence_histogram(calibration.confidence_histogram(confidence, correct),
                                            title="Confidence of right and wrong answers")

        ece, reliability_chart, confidence_chart = common.shared("calibration", [run], calibration_charts)
        k1, k2 = st.columns(2, gap="large")
        k1.plotly_chart(reliability_chart, key="inspect_reliability")
        k2.plotly_chart(confidence_chart, key="inspect_confidence")
        st.caption(f"The kept model (epoch {run.kept_epoch}). Expected calibration error {ece:.4f}: on average the "
                   f"stated confidence is {ece:.1%} away from the accuracy actually reached at that confidence "
                   "(0 is perfect). Bars under the diagonal: over-confident.")

if second is not None:
    st.divider()
    st.subheader("Is run B really better than run A?")
    st.markdown(f"**A** · {md(run.label)} · {code(run.run_id[:6])} — test accuracy "
                f"{run.metrics['test_accuracy']:.2%}  \n"
                f"**B** · {md(second.label)} · {code(second.run_id[:6])} — test accuracy "
                f"{second.metrics['test_accuracy']:.2%}  \n"
                "Both at their kept epochs, on the same test digits.")

    def a_and_b():
        y_a, pred_a, _ = evaluation.predicted(run)
        _, pred_b, _ = evaluation.predicted(second)
        return (statistics.mcnemar(pred_a == y_a, pred_b == y_a),
                statistics.bootstrap_difference(pred_a == y_a, pred_b == y_a))  # seeded: the same every time

    test, interval = common.shared("a_and_b", [run, second], a_and_b)
    pts = lambda v: f"{v * 100:+.2f}".replace("-", "−")  # a real minus sign, as in the sentence
    s1, s2, s3, s4 = st.columns(4)
    s1.metric("Only A right", f"{test.only_a:,}", help="Test digits run A gets right and run B gets wrong.")
    s2.metric("Only B right", f"{test.only_b:,}", help="Test digits run B gets right and run A gets wrong.")
    s3.metric("McNemar exact p", "< 0.001" if test.p_value < 0.001 else f"{test.p_value:.3f}",
              help=f"p = {test.p_value:.3g}: how often a split of those {test.discordant:,} digits at least this "
                   "uneven would happen by chance if both runs were equally good (two-sided, exact).")
    s4.metric("Accuracy B − A", f"{pts(interval.difference)} pts",
              f"{interval.level:.0%} interval {pts(interval.low)} to {pts(interval.high)}",
              delta_color="off", delta_arrow="off",
              help="Run B's test accuracy minus run A's, in percentage points, with a bootstrap interval "
                   "(the test digits resampled 10,000 times).")
    st.info(md(statistics.explain(test, interval, "run A", "run B"), limit=2000), icon=":material/balance:")
    d1, d2 = st.columns([1, 1], gap="large")
    with d1:
        st.markdown("**B minus A** — test digits per cell")
        st.plotly_chart(common.shared("difference", [run, second], lambda: charts.difference_heatmap(
                            evaluation.confusion_difference(run, second))), key="inspect_diff")
        st.caption("Blue: run B has more digits in that cell, red: fewer. On the diagonal (right answers) more is "
                   "better; off it (mistakes), fewer is better.")
    with d2:
        fixed, broken = common.shared("fixed_and_broken", [run, second],
                                      lambda: evaluation.fixed_and_broken(run, second))
        st.markdown(f"**Fixed by the second run (B): {len(fixed)}** — A got them wrong")
        gallery(fixed, lambda r: f"#{r.index}{NBSP}{task.class_names[r.true]} "
                                 f"was{NBSP}{task.class_names[r.predicted_a]}")
        st.markdown(f"**Broken by the second run (B): {len(broken)}** — A got them right")
        gallery(broken, lambda r: f"#{r.index}{NBSP}{task.class_names[r.true]} "
                                  f"now{NBSP}{task.class_names[r.predicted_b]}")

params = share.InspectView(
    run=share.RunRef(run.run_id, run.config), second=share.RunRef(second.run_id, second.config) if second else None,
    true_class=true_class, predicted_class=predicted_class, normalized=normalized,
    epoch=None if epoch == run.kept_epoch else epoch).to_params()
common.write_link("inspect", params)
link_column, model_column, _ = share_slot.columns([1, 1, 3])
with link_column.popover("Copy share link", icon=":material/share:", width="stretch"):
    common.share_box(params)
model_column.download_button(
    "Model (.keras)", run.keras_file, file_name=f"mnistlab-{run.config.arch}-{run.run_id}.keras",
    mime="application/zip", icon=":material/download:", key="inspect_keras", width="stretch",
    help="The kept model as a Keras file, built on demand from the run's stored weights "
         "(load it with keras.saving.load_model).")
