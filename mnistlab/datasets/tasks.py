"""Tasks: what the labels mean.

``digits`` is the 10-class problem (softmax, categorical cross-entropy); ``parity`` is
the binary problem of the Keras "image input binary classification" recipe: odd = 1,
even = 0, one sigmoid output, binary cross-entropy.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    description: str
    class_names: tuple[str, ...]
    units: int
    activation: str
    loss: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def labels(self, digits: np.ndarray) -> np.ndarray:
        """Task labels (int) for an array of digit labels 0-9."""
        digits = np.asarray(digits)
        if self.name == "parity":
            return (digits % 2).astype(np.int64)
        return digits.astype(np.int64)

    def targets(self, digits: np.ndarray) -> np.ndarray:
        """What the model is fitted against: one-hot rows (digits) or 0/1 floats (parity)."""
        labels = self.labels(digits)
        if self.units == 1:
            return labels.astype(np.float32).reshape(-1, 1)
        return np.eye(self.units, dtype=np.float32)[labels]

    def predicted_labels(self, probabilities: np.ndarray) -> np.ndarray:
        """Predicted classes from the model's output."""
        probabilities = np.asarray(probabilities)
        if self.units == 1:
            return (probabilities.reshape(-1) > 0.5).astype(np.int64)
        return probabilities.argmax(axis=1).astype(np.int64)

    def class_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """Per-class probabilities, shape (N, n_classes), also for the one-output parity task."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if self.units == 1:
            p = probabilities.reshape(-1)
            return np.stack([1.0 - p, p], axis=1)
        return probabilities


TASKS: dict[str, Task] = {
    "digits": Task(
        "digits",
        "Which digit is it? 10 classes, softmax output, categorical cross-entropy.",
        tuple(str(d) for d in range(10)),
        10,
        "softmax",
        "categorical_crossentropy",
    ),
    "parity": Task(
        "parity",
        "Is the digit odd (1) or even (0)? One sigmoid output, binary cross-entropy.",
        ("even", "odd"),
        1,
        "sigmoid",
        "binary_crossentropy",
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}, got {name!r}") from None
