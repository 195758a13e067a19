"""A digit drawn by hand, made to look like MNIST; and a drawn digit as a short text for links.

MNIST's digits were size-normalised to fit a 20x20 box (keeping their aspect ratio,
anti-aliased) and centred by their centre of mass in a 28x28 field. :func:`preprocess` does
the same to a drawing of any size, so the models see what they were trained on.
:func:`encode` / :func:`decode` turn a 28x28 uint8 digit into a URL-safe text and back;
:func:`decode` treats its input as hostile (length, alphabet, compressed size, shape) and
raises ``ValueError`` with a short reason. NumPy and SciPy only.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

import numpy as np
from scipy import ndimage

BOX = 20  # the longer side of the digit after scaling, as in MNIST
FIELD = 28
INK_THRESHOLD = 0.05  # pixels (in [0, 1]) below this are background when cropping
MAX_PAD_SIZE = 512
MAX_LINK_LENGTH = 3000
_LINK = re.compile(r"^z[A-Za-z0-9_-]+={0,2}$")


def _ink(drawing) -> np.ndarray:
    array = np.asarray(drawing)
    if array.ndim != 2 or not 1 <= min(array.shape) or max(array.shape) > MAX_PAD_SIZE:
        raise ValueError(f"a drawing must be a 2-D array of at most {MAX_PAD_SIZE}x{MAX_PAD_SIZE} pixels, "
                         f"got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError("a drawing's pixels must be uint8 or floats in [0, 1]")
    return array


def has_ink(drawing) -> bool:
    return bool((_ink(drawing) > INK_THRESHOLD).any())


def preprocess(drawing) -> np.ndarray:
    """A drawing (ink bright on dark, any size) as an MNIST digit: uint8 (28, 28).

    Crop to the ink, scale so the longer side is 20 pixels (aspect kept, smoothed first when
    shrinking), then place it in 28x28 so its centre of mass is at the centre. A drawing
    without ink gives an empty digit.
    """
    ink = _ink(drawing)
    rows, cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1)), np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if not len(rows):
        return np.zeros((FIELD, FIELD), np.uint8)
    box = ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    h, w = box.shape
    brightest = min(1.0, float(box.max()))
    scale = BOX / max(h, w)
    size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    if scale < 1:  # anti-aliasing: remove detail finer than the target pixels
        box = ndimage.gaussian_filter(box, sigma=(1 / scale - 1) / 2)
    small = ndimage.zoom(box, (size[0] / h, size[1] / w), order=1, mode="nearest", grid_mode=True)[: size[0], : size[1]]
    small = np.clip(small, 0, None)
    if small.max() > 0:
        small = small * (brightest / small.max())  # keep the stroke's full brightness
    cy, cx = ndimage.center_of_mass(small) if small.sum() > 0 else ((size[0] - 1) / 2, (size[1] - 1) / 2)
    centre = (FIELD - 1) / 2
    top = int(np.clip(round(centre - cy), 0, FIELD - small.shape[0]))
    left = int(np.clip(round(centre - cx), 0, FIELD - small.shape[1]))
    out = np.zeros((FIELD, FIELD))
    out[top: top + small.shape[0], left: left + small.shape[1]] = small
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def encode(digit) -> str:
    """A 28x28 uint8 digit as a short URL-safe text (zlib, base64), starting with ``z``."""
    array = np.asarray(digit)
    if array.shape != (FIELD, FIELD) or array.dtype != np.uint8:
        raise ValueError(f"digit must be uint8 of shape (28, 28), got {array.dtype} {array.shape}")
    return "z" + base64.urlsafe_b64encode(zlib.compress(array.tobytes(), 9)).decode("ascii").rstrip("=")


def decode(text) -> np.ndarray:
    """The digit of :func:`encode`'s text; ValueError (short, no echo of the value) if it is not one."""
    if not isinstance(text, str) or not 2 <= len(text) <= MAX_LINK_LENGTH or not _LINK.match(text):
        raise ValueError(f"a drawn digit must be a text of 2 to {MAX_LINK_LENGTH} characters starting with 'z' "
                         "in URL-safe base64")
    body = text[1:].rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj()
        pixels = inflater.decompress(raw, FIELD * FIELD + 1)  # never more than one digit's bytes
    except (binascii.Error, ValueError, zlib.error):
        raise ValueError("a drawn digit's text is not valid compressed base64") from None
    if len(pixels) != FIELD * FIELD or inflater.unconsumed_tail:
        raise ValueError(f"a drawn digit must unpack to {FIELD * FIELD} pixels")
    return np.frombuffer(pixels, np.uint8).reshape(FIELD, FIELD).copy()


def decode_pad(value) -> np.ndarray | None:
    """The drawing pad's value ({"size": n, "pixels": base64 of n*n bytes}) as floats in [0, 1], or None."""
    if not isinstance(value, dict):
        return None
    size, pixels = value.get("size"), value.get("pixels")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_PAD_SIZE \
            or not isinstance(pixels, str) or len(pixels) > 4 * size * size:
        return None
    try:
        raw = base64.b64decode(pixels, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != size * size:
        return None
    return np.frombuffer(raw, np.uint8).reshape(size, size).astype(np.float64) / 255.0
