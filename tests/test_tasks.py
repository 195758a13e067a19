import numpy as np
import pytest

from mnistlab.datasets.tasks import get_task


def test_parity_labels_odd_as_one_and_even_as_zero():
    parity = get_task("parity")
    assert parity.labels(np.arange(10)).tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert parity.class_names == ("even", "odd")
    assert parity.targets(np.array([3, 4])).tolist() == [[1.0], [0.0]]


def test_digits_targets_are_one_hot():
    digits = get_task("digits")
    assert digits.targets(np.array([2])).tolist() == [[0, 0, 1, 0, 0, 0, 0, 0, 0, 0]]
    assert digits.loss == "categorical_crossentropy" and digits.activation == "softmax"


def test_predicted_labels_from_one_sigmoid_output_and_from_softmax():
    assert get_task("parity").predicted_labels(np.array([[0.2], [0.9]])).tolist() == [0, 1]
    probs = np.eye(10)[[7, 1]]
    assert get_task("digits").predicted_labels(probs).tolist() == [7, 1]


def test_unknown_task_names_the_allowed_tasks():
    with pytest.raises(ValueError, match="task must be one of 'digits', 'parity', got 'letters'"):
        get_task("letters")
