"""How a model's answers hold up when the digit changes: shifts, rotations, noise, occlusion.

Everything runs through the NumPy engine (:class:`mnistlab.models.engine.Engine`): no
TensorFlow. :func:`robustness_curves` measures test accuracy on a fixed subset of the test
set (the same :func:`subset` for every run, so curves compare) as the digits are

- shifted by 0–4 pixels (each digit in one of the four directions, by its index),
- rotated by 0–30 degrees (alternately clockwise and anticlockwise, bilinear),
- noised with Gaussian noise of standard deviation 0–0.5 (pixels in [0, 1], clipped; a fixed seed).

Only one computation runs at a time in a process (:data:`LOCK`): it is CPU-bound, and two
viewers asking at once would only make both slower. :func:`occlusion` slides a grey patch
over one digit and records how much the probability of a class drops.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import pandas as pd
from scipy import ndimage

SUBSET_SIZE = 1000
PERTURBATIONS: dict[str, tuple[str, tuple[float, ...]]] = {
    "shift": ("shift (pixels)", (0, 1, 2, 3, 4)),
    "rotation": ("rotation (degrees)", (0, 5, 10, 15, 20, 25, 30)),
    "noise": ("Gaussian noise (σ)", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)),
}
#: One robustness computation at a time per process (the dashboard's server).
LOCK = threading.Lock()
_DIRECTIONS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])


def subset(n_test: int, size: int = SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """A fixed, sorted choice of ``size`` test indices (all of them when the test set is smaller)."""
    if n_test <= size:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size, replace=False))


def _float_images(images) -> np.ndarray:
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (N, 28, 28), got {x.shape}")
    return x


def shift(images, pixels: int) -> np.ndarray:
    """Each digit moved ``pixels`` to the right, down, left or up (by its position in the batch), zeros in."""
    x = _float_images(images)
    if pixels == 0:
        return x.copy()
    out = np.zeros_like(x)
    for d, (dy, dx) in enumerate(_DIRECTIONS * int(pixels)):
        src = x[d::4]
        h, w = 28 - abs(dy), 28 - abs(dx)
        out[d::4, max(dy, 0): max(dy, 0) + h, max(dx, 0): max(dx, 0) + w] = \
            src[:, max(-dy, 0): max(-dy, 0) + h, max(-dx, 0): max(-dx, 0) + w]
    return out


def rotate(images, degrees: float) -> np.ndarray:
    """Each digit rotated about its centre by ``degrees``, alternately one way and the other (bilinear)."""
    x = _float_images(images)
    if degrees == 0:
        return x.copy()
    out = np.empty_like(x)
    for sign, start in ((1, 0), (-1, 1)):
        out[start::2] = ndimage.rotate(x[start::2], sign * degrees, axes=(2, 1), reshape=False, order=1,
                                       mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0)


def noise(images, sigma: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise of standard deviation ``sigma`` added to pixels in [0, 1], then clipped to [0, 1]."""
    x = _float_images(images)
    if sigma == 0:
        return x.copy()
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0.0, sigma, x.shape).astype(np.float32), 0.0, 1.0)


TRANSFORMS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "shift": lambda x, level: shift(x, int(level)),
    "rotation": rotate,
    "noise": noise,
}


def robustness_curves(engine, images, labels, progress: Callable[[float, str], None] | None = None,
                      lock: bool = True) -> pd.DataFrame:
    """Accuracy of ``engine`` on ``images`` under every perturbation and level.

    Returns rows of perturbation, level, accuracy. ``progress(fraction, text)`` is called
    after each level. With ``lock`` only one computation runs at a time in this process.
    """
    labels = np.asarray(labels)
    x = _float_images(images)
    if len(labels) != len(x):
        raise ValueError(f"labels must have one entry per image, got {len(labels)} for {len(x)} images")
    steps = [(name, level) for name, (_, levels) in PERTURBATIONS.items() for level in levels]
    guard = LOCK if lock else threading.Lock()
    rows = []
    with guard:
        for i, (name, level) in enumerate(steps, start=1):
            predicted = engine.predicted_labels(TRANSFORMS[name](x, level))
            rows.append({"perturbation": name, "level": float(level), "accuracy": float((predicted == labels).mean())})
            if progress is not None:
                progress(i / len(steps), f"{PERTURBATIONS[name][0]} {level:g}")
    return pd.DataFrame(rows)


def occlusion(engine, image, target: int, patch: int = 6, stride: int = 2, fill: float = 0.5) -> np.ndarray:
    """How much the probability of class ``target`` drops when a grey patch hides each pixel.

    A ``patch`` x ``patch`` square of value ``fill`` (pixels in [0, 1]) slides over the digit with
    ``stride``; every position is one image, all predicted in one batch. Each pixel gets the mean
    drop of the positions that cover it: a (28, 28) map, positive where hiding the pixel hurts.
    """
    x = _float_images(np.asarray(image)[None] if np.ndim(image) == 2 else image)[0]
    if not 1 <= patch <= 28 or not 1 <= stride <= 28:
        raise ValueError(f"patch and stride must be in [1, 28], got {patch} and {stride}")
    probabilities = engine.class_probabilities(x[None])[0]
    if not 0 <= target < len(probabilities):
        raise ValueError(f"target must be a class in [0, {len(probabilities) - 1}], got {target!r}")
    starts = range(0, 28 - patch + 1, stride)
    positions = [(r, c) for r in starts for c in starts]
    batch = np.repeat(x[None], len(positions), axis=0)
    for i, (r, c) in enumerate(positions):
        batch[i, r: r + patch, c: c + patch] = fill
    drops = probabilities[target] - engine.class_probabilities(batch)[:, target]
    total = np.zeros((28, 28))
    count = np.zeros((28, 28))
    for (r, c), drop in zip(positions, drops):
        total[r: r + patch, c: c + patch] += drop
        count[r: r + patch, c: c + patch] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
