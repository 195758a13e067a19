"""Does a run's confidence mean what it says? Reliability, expected calibration error, confidence histograms.

A model is *calibrated* when, of the digits it answers with 80 % confidence, 80 % are
right. :func:`reliability` bins the test digits by the confidence of the predicted class
and compares each bin's mean confidence with its accuracy (the reliability diagram);
:func:`expected_calibration_error` is the average gap, weighted by how many digits fall in
each bin (ECE, Guo et al. 2017). NumPy and pandas only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _inputs(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct)
    if conf.ndim != 1 or ok.shape != conf.shape:
        raise ValueError(f"confidence and correct must be 1-D arrays of the same length, got {conf.shape} "
                         f"and {ok.shape}")
    if not np.isfinite(conf).all() or conf.min(initial=0) < 0 or conf.max(initial=0) > 1:
        raise ValueError("confidence must hold finite probabilities in [0, 1]")
    return conf, ok.astype(bool)


def _bins(n_bins: int) -> np.ndarray:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 1 <= n_bins <= 100:
        raise ValueError(f"n_bins must be an integer in [1, 100], got {n_bins!r}")
    return np.linspace(0.0, 1.0, n_bins + 1)


def _which(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each confidence: [lo, hi) except the last bin, which includes 1."""
    return np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, len(edges) - 2)


def confidence_of(class_probabilities) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, its probability) of each row of per-class probabilities."""
    p = np.asarray(class_probabilities, dtype=np.float64)
    predicted = p.argmax(axis=1)
    return predicted, p[np.arange(len(p)), predicted]


def reliability(confidence, correct, n_bins: int = 10) -> pd.DataFrame:
    """One row per confidence bin: lower, upper, count, confidence (mean), accuracy, gap.

    Empty bins have count 0 and NaN confidence and accuracy.
    """
    conf, ok = _inputs(confidence, correct)
    edges = _bins(n_bins)
    which = _which(conf, edges)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=ok.astype(float), minlength=n_bins) / count
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf,
                         "accuracy": accuracy, "gap": accuracy - mean_conf})


def expected_calibration_error(confidence, correct, n_bins: int = 10) -> float:
    """sum over bins of (share of digits in the bin) x |accuracy - mean confidence|; 0 is perfect."""
    table = reliability(confidence, correct, n_bins)
    filled = table[table["count"] > 0]
    if filled.empty:
        return 0.0
    weights = filled["count"] / filled["count"].sum()
    return float((weights * (filled["accuracy"] - filled["confidence"]).abs()).sum())


def confidence_histogram(confidence, correct, n_bins: int = 20) -> pd.DataFrame:
    """How many right and wrong predictions fall in each confidence bin: lower, upper, right, wrong."""
    conf, ok = _inputs(confidence, correct)
    edges = _bins(n_bins)
    which = _which(conf, edges)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:],
                         "right": np.bincount(which[ok], minlength=n_bins),
                         "wrong": np.bincount(which[~ok], minlength=n_bins)})
