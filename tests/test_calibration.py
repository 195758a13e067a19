"""Reliability diagrams and the expected calibration error on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab.analysis.calibration import (
    confidence_histogram,
    confidence_of,
    expected_calibration_error,
    reliability,
)


def test_ece_of_a_perfectly_calibrated_model_is_zero():
    # in each bin the share of right answers is exactly the confidence
    confidence, correct = [], []
    for c, n_right in ((0.55, 11), (0.75, 15), (0.95, 19)):
        confidence += [c] * 20
        correct += [True] * n_right + [False] * (20 - n_right)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_sampled_calibrated_model_is_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 200_000)
    correct = rng.random(confidence.size) < confidence
    assert expected_calibration_error(confidence, correct) < 0.01


def test_ece_of_an_overconfident_model_is_the_gap():
    confidence = np.full(100, 0.99)
    correct = np.arange(100) < 70
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.29)


def test_reliability_bins_count_every_digit_and_one_goes_in_the_last_bin():
    table = reliability([0.0, 0.05, 0.5, 1.0, 1.0], [False, False, True, True, False], n_bins=10)
    assert table["count"].sum() == 5
    assert table["count"].iloc[0] == 2 and table["count"].iloc[-1] == 2
    assert table["accuracy"].iloc[-1] == 0.5 and np.isnan(table["accuracy"].iloc[3])


def test_confidence_histogram_splits_right_and_wrong():
    hist = confidence_histogram([0.2, 0.9, 0.95, 0.4], [False, True, True, False], n_bins=5)
    assert hist["right"].tolist() == [0, 0, 0, 0, 2]
    assert hist["wrong"].tolist() == [0, 1, 1, 0, 0]  # 0.2 in [0.2, 0.4), 0.4 in [0.4, 0.6)


def test_confidence_of_picks_the_predicted_class():
    predicted, confidence = confidence_of([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    assert predicted.tolist() == [1, 0] and confidence.tolist() == [0.7, 0.6]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        reliability([1.5], [True])
    with pytest.raises(ValueError, match="same length"):
        reliability([0.5, 0.5], [True])
    with pytest.raises(ValueError, match="n_bins"):
        reliability([0.5], [True], n_bins=0)
