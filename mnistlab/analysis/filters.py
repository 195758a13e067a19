"""Hand-made convolution filters on real digits, computed exactly as Keras ``Conv2D`` does.

"Convolution" here is what ``Conv2D`` computes: cross-correlation (the kernel is not
flipped), ``valid`` or ``same`` zero padding (TensorFlow's rule: the extra pixel goes
after), any stride. NumPy only: no TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAX_KERNEL_SIZE = 7
#: The largest kernel value (in magnitude) the playground takes: far beyond any useful filter, and
#: far from where sums of products overflow to infinity.
MAX_KERNEL_VALUE = 1000.0
PADDINGS = ("valid", "same")

PRESETS: dict[str, tuple[np.ndarray, str]] = {
    name: (np.asarray(kernel, dtype=np.float64), description)
    for name, kernel, description in [
        ("identity", [[0, 0, 0], [0, 1, 0], [0, 0, 0]], "Leaves the image unchanged."),
        ("box blur", np.full((3, 3), 1 / 9), "Averages each pixel with its 8 neighbours."),
        ("gaussian blur", np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16, "A softer, weighted blur."),
        ("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "Boosts a pixel against its neighbours."),
        ("sobel x", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "Responds to vertical edges (left to right change)."),
        ("sobel y", [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "Responds to horizontal edges (top to bottom change)."),
        ("laplacian", [[0, 1, 0], [1, -4, 1], [0, 1, 0]], "Responds to edges in every direction."),
        ("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "A relief effect lit from the top left."),
        ("chapter: diagonal edge", [[0, 0, -1], [0, 1, 0], [0, 0, 0]],
         "The CNN chapter's first hand-made filter: a pixel minus its top-right neighbour."),
        ("chapter: horizontal stripes", [[1, 1, 1], [-1, -1, -1], [1, 1, 1]],
         "The CNN chapter's second hand-made filter: bright rows above and below a dark one."),
    ]
}


def validate_kernel(kernel) -> np.ndarray:
    """Return ``kernel`` as a float64 square matrix of odd size 1..7 with finite values."""
    try:
        array = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"kernel must be a square matrix of numbers, got {kernel!r:.80}") from exc
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(f"kernel must be a square matrix (3x3, 5x5 or 7x7), got shape {array.shape}")
    size = array.shape[0]
    if size % 2 == 0 or not 1 <= size <= MAX_KERNEL_SIZE:
        raise ValueError(f"kernel size must be odd and at most {MAX_KERNEL_SIZE} (1, 3, 5 or 7), got {size}x{size}")
    if not np.all(np.isfinite(array)):
        raise ValueError("kernel values must be finite numbers, got NaN or infinity")
    too_big = np.argwhere(np.abs(array) > MAX_KERNEL_VALUE)
    if len(too_big):
        row, col = (int(i) for i in too_big[0])
        raise ValueError(f"kernel values must be between -{MAX_KERNEL_VALUE:,.0f} and {MAX_KERNEL_VALUE:,.0f}, got "
                         f"{array[row, col]:.4g} in row {row}, column {col}")
    return array


def preset(name: str, size: int = 3) -> np.ndarray:
    """A preset kernel, zero-padded to ``size`` x ``size`` (size 3, 5 or 7)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
    return pad_kernel(PRESETS[name][0], size)


def pad_kernel(kernel, size: int) -> np.ndarray:
    """Embed a kernel in the centre of a larger zero kernel (same output, bigger footprint)."""
    kernel = validate_kernel(kernel)
    if size not in (1, 3, 5, 7) or size < kernel.shape[0]:
        raise ValueError(f"size must be 3, 5 or 7 and at least the kernel's {kernel.shape[0]}, got {size}")
    margin = (size - kernel.shape[0]) // 2
    return np.pad(kernel, margin)


def _validate_image(image) -> np.ndarray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"image must be a 2-D array (height, width), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("image values must be finite numbers")
    return array


def _padding_amounts(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _check(padding: str, stride: int) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= 7:
        raise ValueError(f"stride must be an integer in [1, 7], got {stride!r}")


def pad_image(image, k: int, padding: str = "valid", stride: int = 1) -> np.ndarray:
    """The zero-padded image that a ``k`` x ``k`` Conv2D with this padding reads."""
    _check(padding, stride)
    image = _validate_image(image)
    top, bottom = _padding_amounts(image.shape[0], k, stride, padding)
    left, right = _padding_amounts(image.shape[1], k, stride, padding)
    return np.pad(image, ((top, bottom), (left, right)))


def convolve(image, kernel, padding: str = "valid", stride: int = 1) -> np.ndarray:
    """What Keras ``Conv2D`` (one input and one output channel, no bias) computes."""
    kernel = validate_kernel(kernel)
    k = kernel.shape[0]
    padded = pad_image(image, k, padding, stride)
    if padded.shape[0] < k or padded.shape[1] < k:
        raise ValueError(f"image {np.shape(image)} is smaller than the {k}x{k} kernel with 'valid' padding")
    windows = sliding_window_view(padded, (k, k))[::stride, ::stride]
    return np.einsum("ijkl,kl->ij", windows, kernel)


def contributions(image, kernel, row: int, col: int, padding: str = "valid", stride: int = 1) -> dict:
    """How output pixel (row, col) is made: the input patch, the kernel, their products, the sum."""
    kernel = validate_kernel(kernel)
    k = kernel.shape[0]
    padded = pad_image(image, k, padding, stride)
    out_h = (padded.shape[0] - k) // stride + 1
    out_w = (padded.shape[1] - k) // stride + 1
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"output pixel must be within (0..{out_h - 1}, 0..{out_w - 1}), got ({row}, {col})")
    patch = padded[row * stride : row * stride + k, col * stride : col * stride + k]
    products = patch * kernel
    return {"patch": patch, "kernel": kernel, "products": products, "value": float(products.sum())}


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def feature_maps(image, kernels: np.ndarray, biases: np.ndarray, activation: bool = True) -> np.ndarray:
    """A first Conv2D layer's outputs for one uint8 digit: shape (filters, 26, 26).

    ``kernels``: (k, k, 1, filters) as Keras stores them; ``biases``: (filters,). The
    image is scaled to [0, 1] as in training; ``activation`` applies ReLU.
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    biases = np.asarray(biases, dtype=np.float64)
    if kernels.ndim != 4 or kernels.shape[2] != 1 or biases.shape != (kernels.shape[3],):
        raise ValueError(f"kernels must be (k, k, 1, filters) with biases (filters,), "
                         f"got {kernels.shape} and {biases.shape}")
    scaled = _validate_image(image) / 255.0
    maps = np.stack([convolve(scaled, kernels[:, :, 0, f]) + biases[f] for f in range(kernels.shape[3])])
    return relu(maps) if activation else maps


def output_bounds(kernel, activation: bool = False) -> tuple[float, float]:
    """The least and the most this kernel can output on pixels in [0, 1] (its negative and its positive
    weights summed): a fixed colour scale that does not change with the digit. With ``activation``
    (ReLU) the least is 0."""
    kernel = validate_kernel(kernel)
    lo, hi = float(kernel[kernel < 0].sum()), float(kernel[kernel > 0].sum())
    return (0.0 if activation else lo), hi


def tidy(values, decimals: int = 3) -> np.ndarray:
    """Values rounded for display, with no negative zero (``-0.0001`` shows as ``0.000``, not ``-0.000``)."""
    return np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0
