"""The NumPy engine computes what Keras computes, for every architecture and task, without TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab.analysis.filters import convolve
from mnistlab.models.architectures import ARCHITECTURES, summarize, weight_shapes
from mnistlab.models.engine import Engine, as_inputs, conv2d, max_pool
from mnistlab.datasets.tasks import TASKS
from tests.conftest import run_python

CASES = [(arch, task) for arch in ARCHITECTURES for task in TASKS]


def _random_weights(arch: str, task: str, seed: int = 0) -> list[np.ndarray]:
    """Glorot-like kernels and non-zero biases, so every term of every layer matters."""
    rng = np.random.default_rng(seed)
    weights = []
    for shape in weight_shapes(arch, task):
        if len(shape) == 1:
            weights.append(rng.normal(0, 0.05, shape).astype(np.float32))
        else:
            fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
            weights.append(rng.normal(0, np.sqrt(2.0 / (fan_in + fan_out)), shape).astype(np.float32))
    return weights


@pytest.fixture(scope="module")
def digits():
    from mnistlab.datasets.mnist import load_source

    from mnistlab.datasets.mnist import resolve_source

    return load_source(resolve_source("sample")).x_test[:64]


@pytest.mark.parametrize("arch,task", CASES)
def test_engine_predictions_equal_keras_predict(arch, task, digits):
    from mnistlab.models.architectures import build_model

    weights = _random_weights(arch, task, seed=len(arch))
    model = build_model(arch, task)
    model.set_weights(weights)
    x = as_inputs(digits, arch)
    expected = model.predict(x, verbose=0)
    got = Engine(arch, task, weights).predict(digits, batch_size=25)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch,task", CASES)
def test_activations_have_the_shapes_of_the_architecture_summary(arch, task, digits):
    forward = Engine(arch, task, _random_weights(arch, task)).forward(digits[:3])
    rows = summarize(arch, task)
    assert [a.layer for a in forward.activations] == [r["layer"] for r in rows]
    assert [a.values.shape for a in forward.activations] == [(3, *r["output_shape"]) for r in rows]
    np.testing.assert_array_equal(forward.activations[-1].values, forward.output)


def test_conv2d_is_the_filters_pages_convolution_per_channel():
    rng = np.random.default_rng(1)
    image = rng.random((2, 12, 10, 3)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    out = conv2d(image, kernel, bias)
    for n in range(2):
        for f in range(4):
            expected = sum(convolve(image[n, :, :, c], kernel[:, :, c, f]) for c in range(3)) + bias[f]
            np.testing.assert_allclose(out[n, :, :, f], expected, atol=1e-5)


def test_max_pool_drops_the_ragged_edge_as_keras_does():
    x = np.arange(2 * 5 * 5 * 1, dtype=np.float32).reshape(2, 5, 5, 1)
    out = max_pool(x, 2)
    assert out.shape == (2, 2, 2, 1)
    assert out[0, 0, 0, 0] == x[0, 1, 1, 0] and out[1, 1, 1, 0] == x[1, 3, 3, 0]


def test_one_digit_and_uint8_or_float_inputs_give_the_same_output(digits):
    engine = Engine("cnn", "digits", _random_weights("cnn", "digits"))
    one = engine.forward(digits[0]).output
    floats = engine.predict(digits[:1].astype(np.float32) / 255)
    np.testing.assert_allclose(one, floats, atol=1e-7)
    assert one.shape == (1, 10) and abs(one.sum() - 1) < 1e-5


def test_wrong_weights_and_images_are_refused_with_a_message():
    with pytest.raises(ValueError, match="weights must be"):
        Engine("mlp", "digits", _random_weights("cnn", "digits"))
    engine = Engine("mlp", "digits", _random_weights("mlp", "digits"))
    with pytest.raises(ValueError, match="28x28"):
        engine.predict(np.zeros((3, 27, 27)))


def test_engine_on_a_stored_run_matches_its_stored_predictions(trained_store):
    _, runs = trained_store
    from mnistlab.datasets.mnist import load_source, resolve_source

    data = load_source(resolve_source("sample"))
    for run in runs.values():
        stored = run.predictions().probabilities
        got = Engine.from_run(run).predict(data.x_test)
        np.testing.assert_allclose(got, stored, atol=1e-5)


def test_the_engine_imports_no_tensorflow():
    result = run_python(
        "import sys, numpy as np\n"
        "from mnistlab.models.engine import Engine\n"
        "from mnistlab.models.architectures import weight_shapes\n"
        "w = [np.zeros(s, np.float32) for s in weight_shapes('deep_cnn', 'digits')]\n"
        "Engine('deep_cnn', 'digits', w).forward(np.zeros((28, 28), np.uint8))\n"
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print('IMPORTED', bad)\n")
    assert result.returncode == 0, result.stderr
    assert "IMPORTED []" in result.stdout
