"""The model zoo: named, declarative architectures from the Keras MNIST recipes.

Each architecture is a short list of layer specs that reads top to bottom like the
recipe. The same list builds the Keras model (:func:`build_model`, imports TensorFlow)
and computes the layer summary with output shapes and parameter counts
(:func:`summarize`, pure Python, so the dashboard can show it without TensorFlow).
The input layout follows the architecture (flat 784 for perceptrons, 28x28x1 for CNNs);
the output layer follows the task (see :mod:`mnistlab.datasets.tasks`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mnistlab.datasets.tasks import get_task

# A layer spec is a tuple: (kind, *arguments).
#   ("dense", units)                 Dense(units, relu)
#   ("conv", filters, kernel_size)   Conv2D(filters, k x k, relu, valid padding)
#   ("pool", size)                   MaxPooling2D(size)
#   ("dropout", rate)                Dropout(rate)
#   ("flatten",)                     Flatten()
Layer = tuple


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    input: str  # "flat" (784,) or "image" (28, 28, 1)
    layers: tuple[Layer, ...]
    recipe: str

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (784,) if self.input == "flat" else (28, 28, 1)

    @property
    def is_convolutional(self) -> bool:
        return any(layer[0] == "conv" for layer in self.layers)


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, description: str, input: str, layers: list[Layer], recipe: str) -> None:
    ARCHITECTURES[name] = Architecture(name, description, input, tuple(layers), recipe)


register(
    "mlp",
    "Multilayer perceptron: three Dense 256 ReLU layers on the flattened image.",
    "flat",
    [("dense", 256), ("dense", 256), ("dense", 256)],
    "Keras MNIST recipe (MLP)",
)
register(
    "cnn",
    "CNN: two Conv2D 32 3x3 + MaxPool 2 blocks, then Dense 256.",
    "image",
    [("conv", 32, 3), ("pool", 2), ("conv", 32, 3), ("pool", 2), ("flatten",), ("dense", 256)],
    "Keras MNIST recipe (CNN)",
)
register(
    "deep_cnn",
    "Deeper CNN with dropout: Conv 32x2, pool, Conv 64x2, pool, Dense 256, dropout 0.25/0.5.",
    "image",
    [
        ("conv", 32, 3), ("conv", 32, 3), ("pool", 2), ("dropout", 0.25),
        ("conv", 64, 3), ("conv", 64, 3), ("pool", 2), ("dropout", 0.25),
        ("flatten",), ("dense", 256), ("dropout", 0.5),
    ],
    "Keras MNIST recipe (deeper CNN)",
)
register(
    "mlp_512",
    "One hidden Dense 512 ReLU layer: the smallest perceptron of the chapter-16 recipe.",
    "flat",
    [("dense", 512)],
    "Chapter 16 (MLP)",
)
register(
    "mlp_512x2",
    "Two hidden Dense 512 ReLU layers.",
    "flat",
    [("dense", 512), ("dense", 512)],
    "Chapter 16 (MLP, deeper)",
)
register(
    "cnn_dropout",
    "Conv2D 32, Conv2D 64, MaxPool 2, dropout 0.25, Dense 128, dropout 0.5.",
    "image",
    [("conv", 32, 3), ("conv", 64, 3), ("pool", 2), ("dropout", 0.25), ("flatten",), ("dense", 128), ("dropout", 0.5)],
    "Chapter 16 (CNN)",
)


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHITECTURES))}, got {name!r}") from None


def _layer_name(spec: Layer) -> str:
    kind = spec[0]
    if kind == "dense":
        return f"Dense {spec[1]} relu"
    if kind == "conv":
        return f"Conv2D {spec[1]} {spec[2]}x{spec[2]} relu"
    if kind == "pool":
        return f"MaxPooling2D {spec[1]}x{spec[1]}"
    if kind == "dropout":
        return f"Dropout {spec[1]}"
    return "Flatten"


def summarize(arch: str, task: str) -> list[dict[str, Any]]:
    """Layers with output shapes and parameter counts, equal to Keras' ``model.summary()``.

    Returns one dict per layer: ``layer``, ``output_shape`` (without the batch axis),
    ``params``. Pure Python: no TensorFlow import.
    """
    spec = get_architecture(arch)
    out = get_task(task)
    shape: tuple[int, ...] = spec.input_shape
    rows: list[dict[str, Any]] = []
    for layer in spec.layers:
        kind = layer[0]
        params = 0
        if kind == "dense":
            params = shape[-1] * layer[1] + layer[1]
            shape = (*shape[:-1], layer[1])
        elif kind == "conv":
            k = layer[2]
            params = k * k * shape[-1] * layer[1] + layer[1]
            shape = (shape[0] - k + 1, shape[1] - k + 1, layer[1])
        elif kind == "pool":
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            size = 1
            for dim in shape:
                size *= dim
            shape = (size,)
        rows.append({"layer": _layer_name(layer), "output_shape": shape, "params": params})
    rows.append(
        {
            "layer": f"Dense {out.units} {out.activation} (output)",
            "output_shape": (out.units,),
            "params": shape[-1] * out.units + out.units,
        }
    )
    return rows


def weight_shapes(arch: str, task: str) -> list[tuple[int, ...]]:
    """The shapes of the model's weights in Keras' order (kernel, bias per Dense and Conv2D layer).

    What :meth:`keras.Model.get_weights` returns and a stored run's ``weights.npz`` holds.
    Pure Python: no TensorFlow import.
    """
    spec = get_architecture(arch)
    shape: tuple[int, ...] = spec.input_shape
    shapes: list[tuple[int, ...]] = []
    for layer in spec.layers:
        kind = layer[0]
        if kind == "dense":
            shapes += [(shape[-1], layer[1]), (layer[1],)]
            shape = (*shape[:-1], layer[1])
        elif kind == "conv":
            k = layer[2]
            shapes += [(k, k, shape[-1], layer[1]), (layer[1],)]
            shape = (shape[0] - k + 1, shape[1] - k + 1, layer[1])
        elif kind == "pool":
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            shape = (shape[0] * shape[1] * shape[2],)
    units = get_task(task).units
    return shapes + [(shape[-1], units), (units,)]


def count_params(arch: str, task: str) -> int:
    return sum(row["params"] for row in summarize(arch, task))


def flops(arch: str, task: str) -> int:
    """Floating-point operations of one image's forward pass, counted from the layer list.

    Only the multiply-adds of the Dense and Conv2D layers (the output layer included) are
    counted, and a multiply-add counts as 2 FLOPs: a Dense layer ``2 * inputs * units``, a
    Conv2D layer ``2 * out_h * out_w * k * k * in_channels * filters`` (valid padding, stride 1).
    Biases, activations, pooling, dropout and the loss are left out (well under 1 % here).
    Pure Python: no TensorFlow import. See :func:`training_flops` for a training step.
    """
    spec = get_architecture(arch)
    shape: tuple[int, ...] = spec.input_shape
    multiply_adds = 0
    for layer in spec.layers:
        kind = layer[0]
        if kind == "dense":
            multiply_adds += shape[-1] * layer[1]
            shape = (*shape[:-1], layer[1])
        elif kind == "conv":
            k = layer[2]
            shape_out = (shape[0] - k + 1, shape[1] - k + 1, layer[1])
            multiply_adds += shape_out[0] * shape_out[1] * k * k * shape[-1] * layer[1]
            shape = shape_out
        elif kind == "pool":
            shape = (shape[0] // layer[1], shape[1] // layer[1], shape[2])
        elif kind == "flatten":
            shape = (shape[0] * shape[1] * shape[2],)
    multiply_adds += shape[-1] * get_task(task).units
    return 2 * multiply_adds


def training_flops(arch: str, task: str) -> int:
    """FLOPs to train on one image: about 3x :func:`flops` (the forward pass, then the backward
    pass's two products of the same size per layer: the gradient for the weights and the one for
    the inputs). An estimate by convention, the optimizer's update is not counted; multiply-add = 2."""
    return 3 * flops(arch, task)


#: Keras dtype policy per training precision (see ``RunConfig.precision``).
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def build_model(arch: str, task: str, precision: str = "float32"):
    """Build the (uncompiled) Keras model. Imports Keras/TensorFlow.

    ``precision="bfloat16"``: every hidden layer gets Keras' ``mixed_bfloat16`` dtype policy
    (computes in bfloat16, keeps its variables in float32); the output layer computes in
    float32 for a numerically safe softmax/sigmoid and loss. The policy is set per layer, never
    globally, so it cannot leak into another model built in the same process. The weights are
    float32 either way: the same arrays, shapes and order as a float32 model's.
    """
    import keras
    from keras import layers

    try:
        policy = keras.DTypePolicy(PRECISION_POLICIES[precision])
    except KeyError:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISION_POLICIES))}, "
                         f"got {precision!r}") from None
    hidden = {"dtype": policy}
    spec = get_architecture(arch)
    out = get_task(task)
    model = keras.Sequential(name=arch)
    model.add(keras.Input(shape=spec.input_shape))
    for layer in spec.layers:
        kind = layer[0]
        if kind == "dense":
            model.add(layers.Dense(layer[1], activation="relu", **hidden))
        elif kind == "conv":
            model.add(layers.Conv2D(layer[1], (layer[2], layer[2]), activation="relu", **hidden))
        elif kind == "pool":
            model.add(layers.MaxPooling2D((layer[1], layer[1]), **hidden))
        elif kind == "dropout":
            model.add(layers.Dropout(layer[1], **hidden))
        elif kind == "flatten":
            model.add(layers.Flatten(**hidden))
        else:  # pragma: no cover - registry is static
            raise ValueError(f"unknown layer kind {kind!r}")
    model.add(layers.Dense(out.units, activation=out.activation, name="output", dtype="float32"))
    return model
