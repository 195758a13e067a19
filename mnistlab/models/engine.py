"""Inference in NumPy: a stored run's model, without TensorFlow.

The forward pass is computed from an architecture's declarative layer list
(:mod:`mnistlab.models.architectures`) and a run's weights (plain arrays in Keras' order,
:meth:`mnistlab.runs.store.Run.weights`), layer by layer, exactly as Keras computes it:

- ``Dense``: ``x @ kernel + bias`` then ReLU (the output layer: softmax or sigmoid);
- ``Conv2D``: Keras' cross-correlation (no kernel flip), ``valid`` padding, stride 1 — the
  same maths as :func:`mnistlab.analysis.filters.convolve`, vectorised as im2col + one
  matrix product per layer;
- ``MaxPooling2D``: the maximum of each non-overlapping window (a ragged edge is dropped);
- ``Flatten``: row-major (height, width, channels), as Keras on channels-last;
- ``Dropout``: the identity (inference).

Everything is float32, as the Keras model computes it; predictions agree with
``model.predict`` to about 1e-7. :meth:`Engine.forward` also returns every layer's output
(its *activations*), named and shaped as :func:`mnistlab.models.architectures.summarize`
lists them. No TensorFlow, no Keras: the dashboard uses this to run any stored model.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mnistlab.datasets.tasks import get_task
from mnistlab.models.architectures import Architecture, _layer_name, get_architecture, weight_shapes

#: Images per block in :meth:`Engine.predict`: bounds the im2col buffers (deep_cnn: ~150 MB).
BATCH_SIZE = 256


@dataclasses.dataclass(frozen=True)
class Activation:
    """One layer's output for a batch: ``values`` has shape (N, *output_shape)."""

    layer: str  # as architectures.summarize names it, e.g. "Conv2D 32 3x3 relu"
    kind: str  # dense, conv, pool, dropout, flatten, output
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Forward:
    """What one forward pass computed: the model's output and every layer's activations."""

    output: np.ndarray  # (N, units): what Keras' model.predict returns
    activations: list[Activation]  # one per layer, the output layer last

    @property
    def probabilities(self) -> np.ndarray:
        return self.output


def as_inputs(images, arch: str | Architecture) -> np.ndarray:
    """Images as the model reads them: float32 in [0, 1], flat (N, 784) or (N, 28, 28, 1).

    ``images``: uint8 pixels 0–255 (as stored), or floats already in [0, 1]; one image
    (28, 28) or a batch (N, 28, 28), (N, 784) or (N, 28, 28, 1).
    """
    spec = arch if isinstance(arch, Architecture) else get_architecture(arch)
    array = np.asarray(images)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255.0)
    else:
        array = array.astype(np.float32, copy=False)
    if array.size % 784 or array.size == 0:
        raise ValueError(f"images must be 28x28 pixels each, got shape {np.shape(images)}")
    if array.ndim == 2 and array.shape == (28, 28):
        array = array[None]
    return array.reshape((-1, *spec.input_shape))


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras ``Conv2D`` (valid padding, stride 1, no activation) on (N, H, W, C) by im2col.

    ``kernel``: (k, k, C, filters) as Keras stores it. Cross-correlation: output pixel (i, j)
    of filter f is ``sum(x[i:i+k, j:j+k, :] * kernel[..., f]) + bias[f]``.
    """
    k, _, channels, filters = kernel.shape
    n, h, w, _ = x.shape
    oh, ow = h - k + 1, w - k + 1
    # (N, oh, ow, C, k, k) -> (N, oh, ow, k, k, C): one row per output pixel, in the kernel's order
    windows = sliding_window_view(x, (k, k), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    columns = np.ascontiguousarray(windows).reshape(n * oh * ow, k * k * channels)
    out = columns @ kernel.reshape(k * k * channels, filters)
    out += bias
    return out.reshape(n, oh, ow, filters)


def max_pool(x: np.ndarray, size: int) -> np.ndarray:
    """Keras ``MaxPooling2D(size)`` (stride = size, valid): the edge that does not fill a window is dropped."""
    n, h, w, c = x.shape
    oh, ow = h // size, w // size
    return x[:, : oh * size, : ow * size].reshape(n, oh, size, ow, size, c).max(axis=(2, 4))


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # the two branches avoid overflow in exp for large |x|
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


class Engine:
    """One model (architecture, task, weights) that runs in NumPy.

    >>> engine = Engine.from_run(run)                   # doctest: +SKIP
    >>> engine.predict(x_test)                          # (N, units), like model.predict
    >>> engine.forward(x_test[7]).activations           # every layer's output for one digit
    """

    def __init__(self, arch: str, task: str, weights: Sequence[np.ndarray]):
        self.spec = get_architecture(arch)
        self.task = get_task(task)
        shapes = weight_shapes(arch, task)
        weights = [np.asarray(w, dtype=np.float32) for w in weights]
        if len(weights) != len(shapes) or any(w.shape != s for w, s in zip(weights, shapes)):
            raise ValueError(f"weights must be {len(shapes)} arrays of shapes {shapes} for {arch} on {task}, "
                             f"got {[w.shape for w in weights]}")
        self.arch_name, self.task_name = arch, task
        self.weights = weights
        self.steps: list[tuple[str, str, tuple]] = []  # (layer name, kind, arguments)
        position = 0
        for spec in self.spec.layers:
            kind = spec[0]
            if kind in ("dense", "conv"):
                self.steps.append((_layer_name(spec), kind, (weights[position], weights[position + 1])))
                position += 2
            else:
                self.steps.append((_layer_name(spec), kind, tuple(spec[1:])))
        self.steps.append((f"Dense {self.task.units} {self.task.activation} (output)", "output",
                           (weights[position], weights[position + 1])))

    @classmethod
    def from_run(cls, run) -> "Engine":
        """The kept model of a stored run (its weights are checked when read)."""
        return cls(run.config.arch, run.config.task, run.weights())

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _, _ in self.steps]

    def forward(self, images, keep: bool = True) -> Forward:
        """The forward pass for ``images`` (see :func:`as_inputs`); ``keep`` keeps every activation."""
        x = as_inputs(images, self.spec)
        activations: list[Activation] = []
        for name, kind, args in self.steps:
            if kind == "dense":
                x = relu(x @ args[0] + args[1])
            elif kind == "conv":
                x = relu(conv2d(x, *args))
            elif kind == "pool":
                x = max_pool(x, args[0])
            elif kind == "flatten":
                x = x.reshape(len(x), -1)
            elif kind == "output":
                logits = x @ args[0] + args[1]
                x = softmax(logits) if self.task.activation == "softmax" else sigmoid(logits)
            # dropout: the identity at inference
            if keep or kind == "output":
                activations.append(Activation(name, kind, x))
        return Forward(output=x, activations=activations if keep else activations[-1:])

    def predict(self, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """The model's output for every image, computed in blocks: what ``model.predict`` returns."""
        x = as_inputs(images, self.spec)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        blocks = [self.forward(x[i: i + batch_size], keep=False).output for i in range(0, len(x), batch_size)]
        return np.concatenate(blocks) if blocks else np.empty((0, self.task.units), np.float32)

    def class_probabilities(self, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Per-class probabilities (N, n_classes), also for the one-output parity task."""
        return self.task.class_probabilities(self.predict(images, batch_size))

    def predicted_labels(self, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
        return self.task.predicted_labels(self.predict(images, batch_size))
