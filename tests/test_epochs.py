"""Every epoch of a run: epochs.npz is written, checked on read, optional, and agrees with the kept model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mnistlab.analysis import epochs as per_epoch
from mnistlab.analysis import evaluation
from mnistlab.errors import BrokenRun
from mnistlab.runs import records
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def early_stopped(tmp_path_factory):
    """A run whose early stopping keeps epoch 4 of the 5 it ran (deterministic with its seed)."""
    from mnistlab import RunStore

    store = RunStore(tmp_path_factory.mktemp("early") / "runs")
    run = store.get_or_train(tiny_config(arch="mlp", epochs=8, patience=1, optimizer="adam",
                                         learning_rate=0.01)).run
    return store, run


def test_training_keeps_the_test_answers_of_every_epoch_compactly(trained_store):
    _, runs = trained_store
    run = runs["cnn"]
    answers = run.epochs()
    assert answers.classes.shape == (run.metrics["epochs_run"], run.metrics["n_test"])
    assert answers.classes.dtype == np.uint8 and answers.confidence.dtype == np.float16
    assert (run.path / "epochs.npz").stat().st_size < 3 * answers.classes.size + 2048


def test_the_matrix_at_the_kept_epoch_is_the_runs_matrix(trained_store):
    _, runs = trained_store
    for run in runs.values():
        kept = run.kept_epoch
        assert per_epoch.confusion_matrix(run, kept).equals(evaluation.confusion_matrix(run))
        assert per_epoch.per_class_report(run, kept).equals(evaluation.per_class_report(run))
        mine = per_epoch.misclassified(run, kept)
        theirs = evaluation.misclassified(run)
        assert sorted(mine["index"]) == sorted(theirs["index"])


def test_with_early_stopping_the_kept_epochs_row_is_the_final_model(early_stopped):
    _, run = early_stopped
    assert run.kept_epoch < run.metrics["epochs_run"]
    assert per_epoch.confusion_matrix(run, run.kept_epoch).equals(evaluation.confusion_matrix(run))
    curves = per_epoch.accuracy_curves(run)
    assert list(curves.index) == list(range(1, run.metrics["epochs_run"] + 1))
    assert curves.loc[run.kept_epoch, "all"] == pytest.approx(run.metrics["test_accuracy"], abs=1e-6)


def test_learned_late_and_forgotten_digits_follow_their_definitions(early_stopped):
    _, run = early_stopped
    answers = run.epochs()
    labels = run.predictions().labels
    right = answers.classes.astype(int) == labels[None, :]
    last = run.metrics["epochs_run"]
    learned, forgotten = per_epoch.learned_and_forgotten(run, last)
    assert set(learned["index"]) == set(np.flatnonzero(right[-1]))
    for row in learned.head(20).itertuples():
        assert right[row.learned_at - 1:, row.index].all()
        assert row.learned_at == 1 or not right[row.learned_at - 2, row.index]
    assert set(forgotten["index"]) == set(np.flatnonzero(~right[-1] & right[:-1].any(axis=0)))
    for row in forgotten.itertuples():
        assert right[row.last_right - 1, row.index] and not right[row.last_right:, row.index].any()


def test_a_run_stored_without_epochs_npz_still_opens(trained_store, tmp_path):
    from mnistlab import RunStore

    store, runs = trained_store
    copy = RunStore(tmp_path / "runs")
    copy.root.mkdir()
    shutil.copytree(runs["mlp"].path, copy.root / runs["mlp"].run_id)
    (copy.root / runs["mlp"].run_id / "epochs.npz").unlink()
    run = copy.load(runs["mlp"].run_id)
    assert run.epochs() is None and not run.has_epochs
    run.predictions()
    with pytest.raises(ValueError, match="without per-epoch"):
        per_epoch.confusion_matrix(run, 1)


@pytest.mark.parametrize("change,reason", [
    (lambda c, p: (c[:1], p[:1]), "shape"),
    (lambda c, p: (c + 20, p), "classes of the task"),
    (lambda c, p: (c, p * np.float16(np.nan)), "finite"),
    (lambda c, p: (c.astype(np.int64), p), "shape or type|uint8"),
])
def test_a_damaged_epochs_npz_makes_the_run_broken_with_a_reason(trained_store, tmp_path, change, reason):
    from mnistlab import RunStore

    _, runs = trained_store
    source = runs["cnn"]
    copy = RunStore(tmp_path / "runs")
    copy.root.mkdir()
    shutil.copytree(source.path, copy.root / source.run_id)
    answers = source.epochs()
    classes, confidence = change(answers.classes.copy(), answers.confidence.copy())
    np.savez(copy.root / source.run_id / "epochs.npz", classes=classes, confidence=confidence,
             run_id=np.array(source.run_id))
    with pytest.raises(BrokenRun, match=reason):
        copy.load(source.run_id).epochs()


def test_an_epochs_npz_of_another_run_is_refused(trained_store, tmp_path):
    from mnistlab import RunStore

    _, runs = trained_store
    copy = RunStore(tmp_path / "runs")
    copy.root.mkdir()
    shutil.copytree(runs["cnn"].path, copy.root / runs["cnn"].run_id)
    answers = runs["cnn"].epochs()
    records.save_epochs(copy.root / runs["cnn"].run_id / "epochs.npz", runs["mlp"].run_id,
                        answers.classes, answers.confidence)
    with pytest.raises(BrokenRun, match="does not belong"):
        copy.load(runs["cnn"].run_id).epochs()


def test_a_bundle_carries_epochs_npz(trained_store, tmp_path):
    from mnistlab import RunStore
    from mnistlab.runs.bundles import export_bundle, import_bundle

    store, runs = trained_store
    target = RunStore(tmp_path / "other")
    imported, _ = import_bundle(target, export_bundle(store, [runs["cnn"].run_id]))
    assert imported == [runs["cnn"].run_id]
    np.testing.assert_array_equal(target.load(imported[0]).epochs().classes, runs["cnn"].epochs().classes)
