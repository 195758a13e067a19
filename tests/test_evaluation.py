import numpy as np
import pytest

from mnistlab.analysis.evaluation import (
    confusion_difference,
    confusion_matrix,
    fixed_and_broken,
    misclassified,
    per_class_report,
)


def test_confusion_matrix_counts_every_test_image(trained_store):
    _, runs = trained_store
    matrix = confusion_matrix(runs["cnn"])
    assert matrix.shape == (10, 10) and matrix.to_numpy().sum() == 1000
    preds = runs["cnn"].predictions()
    assert np.trace(matrix.to_numpy()) / 1000 == pytest.approx(runs["cnn"].metrics["test_accuracy"])
    normalized = confusion_matrix(runs["cnn"], normalize=True)
    np.testing.assert_allclose(normalized.sum(axis=1), 1.0)
    assert preds.labels.shape == (1000,)


def test_parity_runs_have_a_two_by_two_matrix_named_even_odd(trained_store):
    _, runs = trained_store
    matrix = confusion_matrix(runs["cnn_parity"])
    assert list(matrix.index) == ["even", "odd"] and matrix.to_numpy().sum() == 1000


def test_per_class_report_matches_the_confusion_matrix(trained_store):
    _, runs = trained_store
    report = per_class_report(runs["mlp"])
    matrix = confusion_matrix(runs["mlp"]).to_numpy()
    assert report["support"].tolist() == matrix.sum(axis=1).tolist()
    recall = np.diag(matrix) / matrix.sum(axis=1)
    np.testing.assert_allclose(report["recall"], recall)


def test_misclassified_lists_mistakes_most_confident_first_and_filters(trained_store):
    _, runs = trained_store
    run = runs["cnn"]
    wrong = misclassified(run)
    assert len(wrong) == round(1000 * (1 - run.metrics["test_accuracy"]))
    assert (wrong["true"] != wrong["predicted"]).all()
    assert wrong["confidence"].is_monotonic_decreasing
    some_class = int(wrong["true"].iloc[0])
    only = misclassified(run, true_class=some_class)
    assert (only["true"] == some_class).all() and len(only) == (wrong["true"] == some_class).sum()
    by_index = misclassified(run, sort="index")
    assert by_index["index"].is_monotonic_increasing
    with pytest.raises(ValueError, match="true_class must be None or an integer in \\[0, 9\\]"):
        misclassified(run, true_class=12)


def test_difference_of_two_runs_and_the_samples_one_fixed_or_broke(trained_store):
    _, runs = trained_store
    a, b = runs["mlp"], runs["cnn"]
    diff = confusion_difference(a, b)
    assert diff.to_numpy().sum() == 0
    fixed, broken = fixed_and_broken(a, b)
    correct_a = 1000 * a.metrics["test_accuracy"]
    correct_b = 1000 * b.metrics["test_accuracy"]
    assert len(fixed) - len(broken) == pytest.approx(correct_b - correct_a)
    assert (fixed["predicted_b"] == fixed["true"]).all() and (fixed["predicted_a"] != fixed["true"]).all()
    with pytest.raises(ValueError, match="share a task"):
        confusion_difference(a, runs["cnn_parity"])
