"""What a finished run got right and wrong, from its stored test predictions.

Metrics come from scikit-learn. Everything here reads a run's ``predictions.npz``; no
TensorFlow and no data set is needed (images for a gallery come from
:mod:`mnistlab.datasets.mnist` by index).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from mnistlab.datasets.tasks import get_task
from mnistlab.runs.store import Run


def predicted(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, per-class probabilities) of a run's test set."""
    task = get_task(run.config.task)
    preds = run.predictions()
    probabilities = task.class_probabilities(preds.probabilities)
    return preds.labels, task.predicted_labels(preds.probabilities), probabilities


def confusion_matrix(run: Run, normalize: bool = False) -> pd.DataFrame:
    """Rows: true class, columns: predicted class. ``normalize`` divides each row by its total."""
    task = get_task(run.config.task)
    y_true, y_pred, _ = predicted(run)
    labels = list(range(task.n_classes))
    matrix = _sk_confusion_matrix(y_true, y_pred, labels=labels, normalize="true" if normalize else None)
    index = pd.Index(task.class_names, name="true")
    columns = pd.Index(task.class_names, name="predicted")
    return pd.DataFrame(matrix, index=index, columns=columns)


def per_class_report(run: Run) -> pd.DataFrame:
    """Precision, recall, F1 and support for each class."""
    task = get_task(run.config.task)
    y_true, y_pred, _ = predicted(run)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(task.n_classes)), zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(task.class_names, name="class"),
    )


def misclassified(
    run: Run,
    true_class: int | None = None,
    predicted_class: int | None = None,
    sort: str = "confidence",
) -> pd.DataFrame:
    """Test samples the run got wrong: index, true, predicted, confidence, digit.

    ``true_class``/``predicted_class`` filter by task class (None: all). ``sort``:
    ``confidence`` (most confident mistakes first) or ``index``.
    """
    if sort not in ("confidence", "index"):
        raise ValueError(f"sort must be 'confidence' or 'index', got {sort!r}")
    task = get_task(run.config.task)
    for name, value in (("true_class", true_class), ("predicted_class", predicted_class)):
        if value is not None and value not in range(task.n_classes):
            raise ValueError(f"{name} must be None or an integer in [0, {task.n_classes - 1}], got {value!r}")
    y_true, y_pred, probabilities = predicted(run)
    digits = run.predictions().digits
    wrong = y_true != y_pred
    if true_class is not None:
        wrong &= y_true == true_class
    if predicted_class is not None:
        wrong &= y_pred == predicted_class
    index = np.flatnonzero(wrong)
    frame = pd.DataFrame(
        {
            "index": index,
            "true": y_true[index],
            "predicted": y_pred[index],
            "confidence": probabilities[index, y_pred[index]],
            "digit": digits[index],
        }
    )
    if sort == "confidence":
        frame = frame.sort_values(["confidence", "index"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True)


def _check_comparable(a: Run, b: Run) -> None:
    if a.config.task != b.config.task:
        raise ValueError(f"runs must share a task to be compared, got {a.config.task!r} and {b.config.task!r}")
    if a.metrics.get("data", {}).get("fingerprint") != b.metrics.get("data", {}).get("fingerprint"):
        raise ValueError("runs must be evaluated on the same test set (same data source) to be compared")


def confusion_difference(a: Run, b: Run) -> pd.DataFrame:
    """``b``'s confusion counts minus ``a``'s: positive off-diagonal cells are mistakes b adds."""
    _check_comparable(a, b)
    return confusion_matrix(b) - confusion_matrix(a)


def fixed_and_broken(a: Run, b: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test samples that ``b`` gets right and ``a`` wrong (fixed), and the reverse (broken).

    Each frame has: index, true, predicted_a, predicted_b, digit.
    """
    _check_comparable(a, b)
    y_true, pred_a, _ = predicted(a)
    _, pred_b, _ = predicted(b)
    digits = a.predictions().digits

    def frame(mask: np.ndarray) -> pd.DataFrame:
        index = np.flatnonzero(mask)
        return pd.DataFrame(
            {"index": index, "true": y_true[index], "predicted_a": pred_a[index], "predicted_b": pred_b[index],
             "digit": digits[index]}
        )

    ok_a, ok_b = pred_a == y_true, pred_b == y_true
    return frame(~ok_a & ok_b), frame(ok_a & ~ok_b)
