"""The NumPy inference engine and the per-epoch test answers: how fast, how costly.

Measures (full MNIST from $MNISTLAB_MNIST or ../shared/data/mnist.npz, else the sample):

- ``ten_runs_one_digit``: one digit through 10 models (every architecture, both tasks), as
  the Playground does for its probability charts: target < 150 ms, ratio = 0.150 s / median.
- ``deep_cnn_test_set``: the whole test set through deep_cnn in NumPy, in seconds (reported;
  ratio = Keras ``model.predict`` seconds / NumPy seconds, for scale, not a target).
- ``epoch_answers``: the cost of keeping every epoch's test answers during training (the
  Keras callback's ``model.predict`` of the test set), per epoch, for cnn on the sample and on
  full MNIST; reported as seconds and as a share of the epoch (ratio = 0.25 / share, i.e.
  1.00x or more when the answers cost at most a quarter of an epoch).

    python benchmarks/engine.py [--skip-training]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from common import data_source, median, summary, table

from mnistlab.datasets.mnist import load_source, resolve_source
from mnistlab.models.architectures import ARCHITECTURES, weight_shapes
from mnistlab.models.engine import Engine


def random_weights(arch: str, task: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.05, shape).astype(np.float32) for shape in weight_shapes(arch, task)]


def engine_speed(x_test: np.ndarray) -> tuple[float, float, float]:
    models = [(arch, task) for arch in ARCHITECTURES for task in ("digits", "parity")][:10]
    engines = [Engine(arch, task, random_weights(arch, task, i)) for i, (arch, task) in enumerate(models)]
    digit = x_test[0]
    times = []
    for _ in range(7):
        started = time.perf_counter()
        for engine in engines:
            engine.class_probabilities(digit)
        times.append(time.perf_counter() - started)
    one_digit = median(times)
    deep = Engine("deep_cnn", "digits", random_weights("deep_cnn", "digits", 0))
    started = time.perf_counter()
    deep.predict(x_test)
    numpy_s = time.perf_counter() - started

    from mnistlab.models.architectures import build_model

    model = build_model("deep_cnn", "digits")
    model.set_weights(deep.weights)
    inputs = x_test.astype(np.float32).reshape(-1, 28, 28, 1) / 255
    model.predict(inputs[:256], verbose=0)  # warm up: tracing
    started = time.perf_counter()
    model.predict(inputs, batch_size=256, verbose=0)
    keras_s = time.perf_counter() - started
    return one_digit, numpy_s, keras_s


def epoch_answers_cost(source: str, epochs: int = 2) -> tuple[float, float]:
    """Seconds per epoch spent in the per-epoch test predictions, and the epoch's own seconds."""
    import keras

    from mnistlab.models.training import train
    from mnistlab.runs.config import RunConfig, resolve

    spent: list[float] = []
    original = keras.Model.predict

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    data = load_source(resolve_source(source))
    config = resolve(RunConfig(arch="cnn", epochs=epochs, data=source), data).explicit
    keras.Model.predict = timed
    try:
        result = train(config, data)
    finally:
        keras.Model.predict = original
    per_epoch = spent[:epochs]  # the last call is the final predictions of the kept model
    epoch_seconds = [h["seconds"] for h in result.history]
    return median(per_epoch[1:] or per_epoch), median(epoch_seconds)


def main() -> None:
    source = data_source()
    data = load_source(resolve_source(source))
    print(f"data: {source} ({len(data.x_test):,} test images)")
    one_digit, numpy_s, keras_s = engine_speed(data.x_test)
    print(table(["measure", "seconds"], [["10 runs, one digit (median of 7)", one_digit],
                                         [f"deep_cnn, {len(data.x_test):,} test images, NumPy", numpy_s],
                                         [f"deep_cnn, {len(data.x_test):,} test images, Keras predict", keras_s]]))
    ratios = {"ten_runs_one_digit": 0.150 / one_digit, "deep_cnn_test_set": keras_s / numpy_s}
    if "--skip-training" not in sys.argv:
        rows = []
        for name, src in (("sample", "sample"), ("full", source)):
            if name == "full" and source == "sample":
                continue
            cost, epoch = epoch_answers_cost(src)
            rows.append([f"cnn on {name}", cost, epoch, f"{cost / epoch:.1%}"])
            ratios[f"epoch_answers_{name}"] = 0.25 / (cost / epoch)
        print(table(["per-epoch answers", "predict s/epoch", "epoch s (fit)", "share"], rows))
    print(summary("engine", ratios))


if __name__ == "__main__":
    main()
