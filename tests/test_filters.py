import numpy as np
import pytest

from mnistlab.analysis.filters import (
    PRESETS,
    contributions,
    convolve,
    feature_maps,
    pad_kernel,
    preset,
    validate_kernel,
)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("size", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_convolve_equals_keras_conv2d_with_the_same_weights(padding, size, stride):
    import keras

    rng = np.random.default_rng(size * 10 + stride)
    images = rng.random((3, 28, 28))
    kernel = rng.normal(size=(size, size))
    layer = keras.layers.Conv2D(1, size, padding=padding, strides=stride, use_bias=False)
    layer.build((None, 28, 28, 1))
    layer.set_weights([kernel[:, :, None, None].astype(np.float32)])
    expected = np.asarray(layer(images[..., None].astype(np.float32)))[..., 0]
    for image, want in zip(images, expected):
        got = convolve(image, kernel, padding=padding, stride=stride)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_convolution_is_cross_correlation_not_flipped():
    image = np.zeros((5, 5))
    image[2, 2] = 1.0
    kernel = np.arange(9, dtype=float).reshape(3, 3)
    out = convolve(image, kernel, padding="same")
    # A single bright pixel reproduces the kernel rotated by 180 degrees (cross-correlation).
    np.testing.assert_array_equal(out[1:4, 1:4], kernel[::-1, ::-1])


def test_valid_and_same_output_sizes():
    image = np.ones((28, 28))
    assert convolve(image, preset("box blur")).shape == (26, 26)
    assert convolve(image, preset("box blur"), padding="same").shape == (28, 28)
    assert convolve(image, np.ones((5, 5)), stride=2).shape == (12, 12)


def test_presets_include_the_chapter_filters_and_identity_keeps_the_image():
    assert {"identity", "box blur", "gaussian blur", "sharpen", "sobel x", "sobel y", "laplacian",
            "emboss"} <= set(PRESETS)
    np.testing.assert_array_equal(preset("chapter: diagonal edge"), [[0, 0, -1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(preset("chapter: horizontal stripes"), [[1, 1, 1], [-1, -1, -1], [1, 1, 1]])
    image = np.random.default_rng(1).random((28, 28))
    np.testing.assert_allclose(convolve(image, preset("identity"), padding="same"), image)
    np.testing.assert_allclose(convolve(image, preset("identity", 5), padding="same"), image)


@pytest.mark.parametrize(
    "kernel, message",
    [
        (np.ones((3, 4)), "square matrix"),
        (np.ones((4, 4)), "odd"),
        (np.ones((9, 9)), "at most 7"),
        ([[1, 2, 3], [4, float("nan"), 6], [7, 8, 9]], "finite"),
        ([["a", "b", "c"]] * 3, "square matrix of numbers"),
        (np.ones(3), "square matrix"),
    ],
)
def test_bad_kernels_are_rejected_with_a_clear_message(kernel, message):
    with pytest.raises(ValueError, match=message):
        validate_kernel(kernel)


def test_bad_padding_and_stride_are_rejected():
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        convolve(np.ones((5, 5)), np.ones((3, 3)), padding="full")
    with pytest.raises(ValueError, match="stride must be an integer"):
        convolve(np.ones((5, 5)), np.ones((3, 3)), stride=0)


def test_contributions_show_the_products_that_make_one_output_pixel():
    image = np.random.default_rng(2).random((28, 28))
    kernel = preset("sobel x")
    parts = contributions(image, kernel, 4, 7)
    assert parts["products"].shape == (3, 3)
    assert parts["value"] == pytest.approx(convolve(image, kernel)[4, 7])
    with pytest.raises(ValueError, match="output pixel"):
        contributions(image, kernel, 26, 0)


def test_pad_kernel_embeds_in_the_centre():
    big = pad_kernel(preset("sharpen"), 5)
    assert big.shape == (5, 5) and big[2, 2] == 5 and big[0].sum() == 0


def test_feature_maps_apply_scaling_bias_and_relu():
    image = (np.random.default_rng(3).random((28, 28)) * 255).astype(np.uint8)
    kernels = np.stack([preset("identity"), -preset("identity")], axis=-1)[:, :, None, :]
    maps = feature_maps(image, kernels, np.array([0.5, 0.0]))
    assert maps.shape == (2, 26, 26)
    np.testing.assert_allclose(maps[0], image[1:27, 1:27] / 255 + 0.5)
    assert np.all(maps[1] == 0)  # -image is never positive: ReLU clears it
