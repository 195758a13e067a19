"""Robustness curves and occlusion maps through the NumPy engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mnistlab.analysis import robustness
from mnistlab.models.engine import Engine


@pytest.fixture(scope="module")
def sample():
    from mnistlab.datasets.mnist import load_source, resolve_source

    data = load_source(resolve_source("sample"))
    return data.x_test, data.y_test


def test_the_subset_is_fixed_and_covers_small_test_sets():
    assert np.array_equal(robustness.subset(10_000), robustness.subset(10_000))
    assert len(robustness.subset(10_000)) == 1000 and np.all(np.diff(robustness.subset(10_000)) > 0)
    assert np.array_equal(robustness.subset(300), np.arange(300))


def test_perturbations_do_what_they_say(sample):
    x = sample[0][:8]
    shifted = robustness.shift(x, 3)
    np.testing.assert_allclose(shifted[0, :, 3:], x[0, :, :-3] / 255, atol=1e-7)  # right
    np.testing.assert_allclose(shifted[1, 3:, :], x[1, :-3, :] / 255, atol=1e-7)  # down
    assert np.array_equal(robustness.rotate(x, 0), x / np.float32(255))
    rotated = robustness.rotate(x, 30)
    assert rotated.shape == (8, 28, 28) and 0 <= rotated.min() and rotated.max() <= 1
    assert not np.allclose(rotated, x / 255)
    noisy = robustness.noise(x, 0.3)
    assert np.array_equal(noisy, robustness.noise(x, 0.3)) and 0 <= noisy.min() and noisy.max() <= 1


def test_curves_of_a_trained_run_start_at_its_accuracy_and_fall(trained_store, sample):
    _, runs = trained_store
    run = runs["mlp"]
    x, y = sample
    index = robustness.subset(len(x), 200)
    seen = []
    curves = robustness.robustness_curves(Engine.from_run(run), x[index], run.predictions().labels[index],
                                          progress=lambda f, t: seen.append(f))
    assert seen[-1] == 1.0 and len(seen) == len(curves)
    assert set(curves["perturbation"]) == {"shift", "rotation", "noise"}
    clean = curves[curves["level"] == 0]["accuracy"]
    expected = (run.predictions().labels[index] == run.predictions().probabilities[index].argmax(1)).mean()
    assert np.allclose(clean, expected)
    shifts = curves[curves["perturbation"] == "shift"]["accuracy"].to_numpy()
    assert shifts[-1] < shifts[0]


def test_only_one_computation_runs_at_a_time():
    class Slow:
        active = 0
        most = 0

        def predicted_labels(self, images):
            Slow.active += 1
            Slow.most = max(Slow.most, Slow.active)
            threading.Event().wait(0.002)
            Slow.active -= 1
            return np.zeros(len(images), int)

    x, y = np.zeros((4, 28, 28), np.uint8), np.zeros(4, int)
    threads = [threading.Thread(target=robustness.robustness_curves, args=(Slow(), x, y)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Slow.most == 1


def test_occlusion_drops_where_the_ink_is(trained_store, sample):
    _, runs = trained_store
    run = runs["cnn"]
    engine = Engine.from_run(run)
    image = sample[0][0]
    predicted = int(engine.predicted_labels(image)[0])
    heat = robustness.occlusion(engine, image, predicted)
    assert heat.shape == (28, 28) and np.isfinite(heat).all()
    with pytest.raises(ValueError, match="target"):
        robustness.occlusion(engine, image, 10)
