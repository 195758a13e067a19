"""Train one configuration: seeded, observable, cancellable. Imports Keras lazily.

:func:`train` is the only place that fits a model. It reports every finished epoch
through ``on_epoch`` and checks ``should_stop`` after every block of batches
(``STEPS_PER_EXECUTION``, a few milliseconds of work), so a run stops within one block of
a cancel request (:class:`Cancelled` is raised; nothing is returned).

Speed without changing the maths: the images stay uint8 and each batch is converted as
it is needed, several batches run per call into TensorFlow (``steps_per_execution``),
and validation and prediction use large batches. Same model, batch size, optimizer,
loss, per-epoch reshuffling and number of updates as the plain Keras recipe.

``precision="bfloat16"`` (a choice that changes the maths, so part of the run id) builds the
model with Keras' ``mixed_bfloat16`` policy per layer (see
:func:`~mnistlab.models.architectures.build_model`): bfloat16 compute, float32 variables,
a float32 output layer; the stored weights and predictions are float32 as always.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mnistlab.datasets.mnist import Dataset
from mnistlab.datasets.tasks import get_task
from mnistlab.models.architectures import build_model, get_architecture

if TYPE_CHECKING:  # models sit below runs: the configuration is only read here
    from mnistlab.runs.config import RunConfig

EpochCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
#: Batches run per call into TensorFlow (Keras' steps_per_execution), chosen per architecture
#: by benchmarks/train_speed.py: small models are dominated by per-step overhead. The same
#: batches and updates as one step per call; callbacks (progress, cancel) run per block.
STEPS_PER_EXECUTION = {"mlp": 64, "mlp_512": 64, "mlp_512x2": 64, "cnn": 16, "deep_cnn": 16, "cnn_dropout": 16}
#: Validation and prediction batch size: evaluation only, so it does not change the results;
#: larger batches are no faster here and raise the peak memory (deep_cnn: +200 MB at 1000).
EVAL_BATCH_SIZE = 256


class Cancelled(Exception):
    """Training was stopped on request; the run is not finished."""


@dataclasses.dataclass
class Split:
    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_fit: int
    n_val: int
    description: str


@dataclasses.dataclass
class TrainResult:
    """What one training produced. ``status`` is ``finished`` or ``diverged``.

    A finished run keeps the weights of ``kept_epoch``: the last epoch, or with early
    stopping the epoch of lowest validation loss (``kept_reason`` says which). Its test
    metrics are Keras' own ``model.evaluate`` of those weights, and ``probabilities`` their
    predictions. A diverged run (a loss became NaN or infinite) has its history only.
    """

    status: str
    history: list[dict[str, Any]]
    kept_epoch: int | None
    kept_reason: str | None
    test_loss: float | None
    test_accuracy: float | None
    probabilities: np.ndarray | None
    test_digits: np.ndarray
    weights: list[np.ndarray] | None
    timings: dict[str, float]
    versions: dict[str, str]
    split: dict[str, Any]
    message: str = ""
    #: The test-set answers after every epoch, compact: (classes uint8, confidence float16), each of
    #: shape (epochs run, test images); row e is the model at the end of epoch e + 1 (see EpochAnswers).
    epochs: tuple[np.ndarray, np.ndarray] | None = None


def split_data(config: "RunConfig", dataset: Dataset) -> Split:
    """Pick the images to fit on and to validate with, following the recipe's schemes."""
    x, y = dataset.x_train, dataset.y_train
    n_total = len(x)
    if config.validation == "holdout":
        n_val = config.validation_size if config.validation_size is not None else n_total // 6
        if n_val >= n_total:
            raise ValueError(
                f"validation_size (holdout images) must be smaller than the {n_total} training "
                f"images of this data source, got {n_val}"
            )
        pool_x, pool_y = x[: n_total - n_val], y[: n_total - n_val]
        x_fit, y_fit = pool_x[: config.train_size], pool_y[: config.train_size]
        return Split(x_fit, y_fit, x[n_total - n_val :], y[n_total - n_val :], len(x_fit), n_val,
                     f"fit on {len(x_fit):,}, validate on the last {n_val:,} training images")
    x_fit, y_fit = x[: config.train_size], y[: config.train_size]
    if config.validation == "fraction":
        fraction = float(config.effective_validation_size)
        n_fit = int(math.floor(len(x_fit) * (1.0 - fraction)))  # as Keras' validation_split: the last part
        n_val = len(x_fit) - n_fit
        return Split(x_fit[:n_fit], y_fit[:n_fit], x_fit[n_fit:], y_fit[n_fit:], n_fit, n_val,
                     f"fit on {n_fit:,}, validate on the last {n_val:,} ({fraction:g} of {len(x_fit):,})")
    return Split(x_fit, y_fit, dataset.x_test, dataset.y_test, len(x_fit), len(dataset.x_test),
                 f"fit on {len(x_fit):,}, validate on the {len(dataset.x_test):,} test images")


def batches(images: np.ndarray, targets: np.ndarray | None, batch_size: int, arch: str,
            shuffle_seed: int | None = None, dtype: str = "float32"):
    """A tf.data pipeline that keeps the images as uint8 and converts each batch.

    Each batch is ``float32(images) / 255`` in the architecture's input layout, exactly
    what :func:`prepare_images` gives, without a float copy of the whole set in memory.
    With ``shuffle_seed`` the order is reshuffled every epoch (as ``fit(shuffle=True)``).
    ``dtype="bfloat16"`` (for a bfloat16 model) casts that to bfloat16 here, as the model's
    first layer would (the same values), so the cast overlaps with the training step.
    """
    import tensorflow as tf

    shape = (-1, *get_architecture(arch).input_shape)
    pixels = tf.constant(images)
    labels = tf.constant(targets) if targets is not None else None

    def load(index):
        x = tf.reshape(tf.cast(tf.gather(pixels, index), tf.float32) / 255.0, shape)
        if dtype != "float32":
            x = tf.cast(x, dtype)
        return x if labels is None else (x, tf.gather(labels, index))

    order = tf.data.Dataset.range(len(images))
    if shuffle_seed is not None:
        order = order.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    return order.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def prepare_images(images: np.ndarray, arch: str) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 in [0, 1], flat for perceptrons, (N, 28, 28, 1) for CNNs."""
    spec = get_architecture(arch)
    return (images.astype(np.float32) / 255.0).reshape((len(images), *spec.input_shape))


def make_optimizer(name: str, learning_rate: float):
    import keras

    classes = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "nadam": keras.optimizers.Nadam,
        "adamw": keras.optimizers.AdamW,
    }
    return classes[name](learning_rate=learning_rate)


def versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from mnistlab import __version__

    return {
        "mnistlab": __version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def EpochAnswers(task, test_inputs, skip: Callable[[], bool]):
    """A Keras callback that predicts the test set at every epoch's end and keeps the compact answers.

    For each test image: the predicted class (uint8) and its probability (float16), 3 bytes per
    image and epoch. Prediction runs in batches of ``EVAL_BATCH_SIZE`` on the weights of that
    epoch's end, so with early stopping the kept epoch's row is the run's final predictions.
    """
    import keras

    class _EpochAnswers(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.classes: list[np.ndarray] = []
            self.confidence: list[np.ndarray] = []
            self.seconds: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            if skip():
                return
            started = time.perf_counter()
            output = self.model.predict(test_inputs, verbose=0)
            labels = task.predicted_labels(output)
            probabilities = task.class_probabilities(output)
            self.classes.append(labels.astype(np.uint8))
            self.confidence.append(probabilities[np.arange(len(labels)), labels].astype(np.float16))
            self.seconds.append(time.perf_counter() - started)

        def arrays(self, epochs_run: int) -> tuple[np.ndarray, np.ndarray] | None:
            if len(self.classes) != epochs_run:
                return None
            return np.stack(self.classes), np.stack(self.confidence)

    return _EpochAnswers()


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def train(
    config: "RunConfig",
    dataset: Dataset,
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fit ``config`` on ``dataset``, evaluate the kept weights on its test set, return everything.

    ``config`` should be resolved (sizes explicit, see :func:`mnistlab.runs.config.resolve`);
    an unresolved one trains the same model. A loss that turns NaN or infinite stops the run
    at once (``status="diverged"``); a cancel raises :class:`Cancelled`.
    """
    import keras

    started = time.perf_counter()
    task = get_task(config.task)
    split = split_data(config, dataset)
    keras.utils.set_random_seed(config.seed)

    model = build_model(config.arch, config.task, config.precision)
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.effective_learning_rate),
        loss=task.loss,
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION[config.arch],
    )
    inputs = "bfloat16" if config.precision == "bfloat16" else "float32"  # what the first layer computes in
    fit_data = batches(split.x_fit, task.targets(split.y_fit), config.batch_size, config.arch, config.seed, inputs)
    validation_data = batches(split.x_val, task.targets(split.y_val), EVAL_BATCH_SIZE, config.arch, dtype=inputs)

    history: list[dict[str, Any]] = []
    cancelled = False
    diverged = ""

    class Observer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            nonlocal cancelled, diverged
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                diverged = f"the training loss became {float(loss)} in epoch {len(history) + 1}"
                self.model.stop_training = True
            if should_stop is not None and should_stop():
                cancelled = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            nonlocal diverged
            if cancelled:
                return
            logs = logs or {}
            record: dict[str, Any] = {"epoch": epoch + 1}
            record.update({k: _finite(logs[k]) for k in HISTORY_KEYS if k in logs})
            record["seconds"] = time.perf_counter() - self.epoch_started
            record["elapsed"] = time.perf_counter() - fit_started
            history.append(record)
            bad = [k for k in HISTORY_KEYS if k in logs and record[k] is None]
            if bad and not diverged:
                diverged = f"{bad[0]} became {float(logs[bad[0]])} in epoch {epoch + 1}"
                self.model.stop_training = True
            if on_epoch is not None:
                on_epoch(record, list(history))

    answers = EpochAnswers(task, batches(dataset.x_test, None, EVAL_BATCH_SIZE, config.arch, dtype=inputs),
                           skip=lambda: cancelled or bool(diverged))
    callbacks: list[Any] = [Observer(), answers]
    stopper = None
    if config.patience is not None:
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                restore_best_weights=True)
        callbacks.append(stopper)
    fit_started = time.perf_counter()
    model.fit(fit_data, epochs=config.epochs, validation_data=validation_data, callbacks=callbacks, shuffle=False,
              verbose=0)
    fit_seconds = time.perf_counter() - fit_started
    if cancelled:
        raise Cancelled(f"training of {config.label()} was cancelled")
    common = dict(test_digits=dataset.y_test, versions=versions(),
                  split={"description": split.description, "fit_images": split.n_fit,
                         "validation_images": split.n_val})
    if diverged:
        return TrainResult(status="diverged", history=history, kept_epoch=None, kept_reason=None, test_loss=None,
                           test_accuracy=None, probabilities=None, weights=None, message=diverged,
                           timings={"fit_seconds": fit_seconds, "evaluate_seconds": 0.0,
                                    "total_seconds": time.perf_counter() - started}, **common)

    # Keras' EarlyStopping(restore_best_weights=True) restores its best epoch at the end of
    # training, also when training ran all its epochs: that epoch is the one kept.
    if stopper is not None and stopper.best_weights is not None:
        kept_epoch, kept_reason = int(stopper.best_epoch) + 1, "best_val_loss"
    else:
        kept_epoch, kept_reason = len(history), "last"

    eval_started = time.perf_counter()
    test_data = batches(dataset.x_test, task.targets(dataset.y_test), EVAL_BATCH_SIZE, config.arch, dtype=inputs)
    test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    probabilities = model.predict(batches(dataset.x_test, None, EVAL_BATCH_SIZE, config.arch, dtype=inputs),
                                  verbose=0)
    eval_seconds = time.perf_counter() - eval_started
    return TrainResult(
        status="finished",
        history=history,
        kept_epoch=kept_epoch,
        kept_reason=kept_reason,
        test_loss=float(test_loss),
        test_accuracy=float(test_accuracy),
        probabilities=probabilities.astype(np.float32),
        epochs=answers.arrays(len(history)),
        weights=[np.asarray(w, dtype=np.float32) for w in model.get_weights()],
        timings={
            "fit_seconds": fit_seconds,
            "evaluate_seconds": eval_seconds,
            "total_seconds": time.perf_counter() - started,
        },
        **common,
    )
