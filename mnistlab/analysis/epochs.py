"""A run through its epochs: what it got right and wrong after each one, from ``epochs.npz``.

Training keeps, after every epoch, each test digit's predicted class and its probability
(:meth:`mnistlab.runs.store.Run.epochs`; runs stored before that have none and every
function here raises ``ValueError`` for them). Row ``e`` describes the weights at the end of
epoch ``e + 1``, so at the kept epoch these tables equal the run's own
(:mod:`mnistlab.analysis.evaluation`), also with early stopping. NumPy, pandas, scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from mnistlab.datasets.tasks import get_task
from mnistlab.runs.records import Epochs
from mnistlab.runs.store import Run


def answers(run: Run) -> Epochs:
    """The run's per-epoch answers; ValueError if it was stored without them."""
    epochs = run.epochs()
    if epochs is None:
        raise ValueError(f"run {run.run_id} was stored without per-epoch test answers (trained before they were "
                         "kept); train it again to get them")
    return epochs


def _row(run: Run, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    epochs = answers(run)
    n = len(epochs.classes)
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not 1 <= epoch <= n:
        raise ValueError(f"epoch must be an integer in [1, {n}], got {epoch!r}")
    return epochs.classes[epoch - 1].astype(np.int64), epochs.confidence[epoch - 1].astype(np.float64)


def confusion_matrix(run: Run, epoch: int, normalize: bool = False) -> pd.DataFrame:
    """The confusion matrix of the model at the end of ``epoch`` (rows true, columns predicted)."""
    task = get_task(run.config.task)
    predicted, _ = _row(run, epoch)
    matrix = _sk_confusion_matrix(run.predictions().labels, predicted, labels=list(range(task.n_classes)),
                                  normalize="true" if normalize else None)
    return pd.DataFrame(matrix, index=pd.Index(task.class_names, name="true"),
                        columns=pd.Index(task.class_names, name="predicted"))


def per_class_report(run: Run, epoch: int) -> pd.DataFrame:
    """Precision, recall, F1 and support per class at the end of ``epoch``."""
    task = get_task(run.config.task)
    predicted, _ = _row(run, epoch)
    precision, recall, f1, support = precision_recall_fscore_support(
        run.predictions().labels, predicted, labels=list(range(task.n_classes)), zero_division=0)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support},
                        index=pd.Index(task.class_names, name="class"))


def misclassified(run: Run, epoch: int, true_class: int | None = None,
                  predicted_class: int | None = None) -> pd.DataFrame:
    """Mistakes at the end of ``epoch``, most confident first: index, true, predicted, confidence, digit."""
    task = get_task(run.config.task)
    for name, value in (("true_class", true_class), ("predicted_class", predicted_class)):
        if value is not None and value not in range(task.n_classes):
            raise ValueError(f"{name} must be None or an integer in [0, {task.n_classes - 1}], got {value!r}")
    predicted, confidence = _row(run, epoch)
    preds = run.predictions()
    wrong = preds.labels != predicted
    if true_class is not None:
        wrong &= preds.labels == true_class
    if predicted_class is not None:
        wrong &= predicted == predicted_class
    index = np.flatnonzero(wrong)
    frame = pd.DataFrame({"index": index, "true": preds.labels[index], "predicted": predicted[index],
                          "confidence": confidence[index], "digit": preds.digits[index]})
    frame = frame.sort_values(["confidence", "index"], ascending=[False, True], kind="stable")
    return frame.reset_index(drop=True)


def accuracy_curves(run: Run) -> pd.DataFrame:
    """Test accuracy per epoch (rows, 1..n) for each digit 0-9 (columns) and overall ("all")."""
    epochs = answers(run)
    preds = run.predictions()
    right = epochs.classes.astype(np.int64) == preds.labels[None, :]
    table = {str(d): right[:, preds.digits == d].mean(axis=1) if (preds.digits == d).any() else np.nan
             for d in range(10)}
    table["all"] = right.mean(axis=1)
    return pd.DataFrame(table, index=pd.RangeIndex(1, len(right) + 1, name="epoch"))


def learned_and_forgotten(run: Run, epoch: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Digits learned late and digits forgotten, as seen at ``epoch`` (default: the kept epoch).

    Learned: right at ``epoch`` — ``learned_at`` is the epoch from which the digit stayed right
    through ``epoch`` (latest first: the hard digits the model learned last). Forgotten: wrong at
    ``epoch`` although right at an earlier one — ``last_right`` is the last such epoch. Both
    frames have index, true, digit and their epoch column.
    """
    epochs = answers(run)
    epoch = run.kept_epoch if epoch is None else epoch
    _row(run, epoch)  # checks the epoch
    preds = run.predictions()
    right = epochs.classes[:epoch].astype(np.int64) == preds.labels[None, :]  # (epoch, N)
    now = right[-1]
    # the first epoch of the final run of right answers: after the last wrong one
    wrong_before = ~right
    last_wrong = np.where(wrong_before.any(axis=0), epoch - np.argmax(wrong_before[::-1], axis=0), 0)  # epoch no.
    learned_index = np.flatnonzero(now)
    learned = pd.DataFrame({"index": learned_index, "true": preds.labels[learned_index],
                            "digit": preds.digits[learned_index], "learned_at": last_wrong[learned_index] + 1})
    learned = learned.sort_values(["learned_at", "index"], ascending=[False, True], kind="stable")
    ever = right[:-1].any(axis=0) if epoch > 1 else np.zeros_like(now)
    forgotten_index = np.flatnonzero(~now & ever)
    last_right = epoch - 1 - np.argmax(right[:-1][::-1], axis=0) if epoch > 1 else np.zeros(len(now), int)
    forgotten = pd.DataFrame({"index": forgotten_index, "true": preds.labels[forgotten_index],
                              "digit": preds.digits[forgotten_index],
                              "last_right": last_right[forgotten_index]})
    return learned.reset_index(drop=True), forgotten.sort_values(["last_right", "index"], kind="stable",
                                                                   ascending=[False, True]).reset_index(drop=True)
