"""A drawn digit made MNIST-like, and a drawn digit in a link (hostile links included)."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from scipy import ndimage

from mnistlab.datasets.drawing import decode, decode_pad, encode, has_ink, preprocess


def _stroke(size=280, start=(30, 200), end=(250, 230), width=18):
    """A thick line drawn off-centre on a big pad, like a hand-drawn '1' in a corner."""
    yy, xx = np.mgrid[:size, :size]
    (y0, x0), (y1, x1) = start, end
    t = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0)) / ((y1 - y0) ** 2 + (x1 - x0) ** 2), 0, 1)
    distance = np.hypot(yy - (y0 + t * (y1 - y0)), xx - (x0 + t * (x1 - x0)))
    return (distance < width / 2).astype(np.float64)


def test_a_drawn_stroke_lands_centred_by_mass_in_a_20_pixel_box():
    digit = preprocess(_stroke())
    assert digit.shape == (28, 28) and digit.dtype == np.uint8 and digit.max() == 255
    cy, cx = ndimage.center_of_mass(digit.astype(float))
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75
    rows = np.flatnonzero(digit.max(axis=1) > 12)
    cols = np.flatnonzero(digit.max(axis=0) > 12)
    assert 18 <= rows[-1] - rows[0] + 1 <= 21  # the longer side scaled to about 20 pixels
    assert cols[-1] - cols[0] + 1 < 12  # aspect ratio kept: a steep line stays narrow


def test_an_empty_pad_gives_an_empty_digit():
    assert not has_ink(np.zeros((56, 56)))
    assert preprocess(np.zeros((56, 56))).max() == 0


def test_a_drawn_digit_survives_its_link():
    digit = preprocess(_stroke())
    text = encode(digit)
    assert len(text) < 600 and text.startswith("z")
    np.testing.assert_array_equal(decode(text), digit)


@pytest.mark.parametrize("text", [
    "", "z", "x" * 50, "z" + "A" * 4000, "z!!!", "zAAAA", 42, None, "z" + "%3Cscript%3E",
    "z" + base64.urlsafe_b64encode(zlib.compress(b"\0" * 10_000_000)).decode(),  # a zip bomb
    "z" + base64.urlsafe_b64encode(zlib.compress(b"\0" * 700)).decode(),  # too few pixels
])
def test_hostile_link_values_are_refused_with_a_short_message(text):
    with pytest.raises(ValueError) as info:
        decode(text)
    assert len(str(info.value)) < 160 and "script" not in str(info.value)


def test_the_pads_value_is_checked():
    pixels = base64.b64encode(bytes(56 * 56)).decode()
    assert decode_pad({"size": 56, "pixels": pixels}).shape == (56, 56)
    for bad in (None, [], {"size": 56}, {"size": "56", "pixels": pixels}, {"size": 57, "pixels": pixels},
                {"size": 56, "pixels": "not base64!"}, {"size": 10**6, "pixels": pixels}):
        assert decode_pad(bad) is None
