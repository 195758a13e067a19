import numpy as np
import pytest

from mnistlab.datasets.tasks import TASKS
from mnistlab.models.architectures import ARCHITECTURES, build_model, count_params, flops, summarize, training_flops


def test_registry_has_the_recipe_models_each_with_a_description():
    assert set(ARCHITECTURES) == {"mlp", "cnn", "deep_cnn", "mlp_512", "mlp_512x2", "cnn_dropout"}
    assert all(spec.description for spec in ARCHITECTURES.values())


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_each_architecture_builds_for_each_task_with_keras_parameter_count(arch, task):
    model = build_model(arch, task)
    assert model.count_params() == count_params(arch, task)
    rows = summarize(arch, task)
    keras_layers = model.layers
    assert len(rows) == len(keras_layers)
    for row, layer in zip(rows, keras_layers):
        assert row["output_shape"] == tuple(layer.output.shape[1:])
        assert row["params"] == layer.count_params()
    units = 10 if task == "digits" else 1
    assert model.output_shape == (None, units)


def test_input_layout_follows_the_architecture():
    assert build_model("mlp", "digits").input_shape == (None, 784)
    assert build_model("cnn", "digits").input_shape == (None, 28, 28, 1)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="arch must be one of 'mlp'"):
        summarize("vgg", "digits")


def test_parity_model_outputs_a_probability():
    model = build_model("mlp", "parity")
    out = model.predict(np.zeros((2, 784), dtype=np.float32), verbose=0)
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))


# Hand-computed forward multiply-adds per image (Dense: inputs * units; Conv2D 3x3 valid:
# out_h * out_w * 3 * 3 * in_channels * filters); a multiply-add is 2 FLOPs.
HAND_MULTIPLY_ADDS = {
    ("mlp", 10): 784 * 256 + 256 * 256 + 256 * 256 + 256 * 10,
    ("cnn", 10): (26 * 26 * 9 * 1 * 32          # conv 32 -> 26x26x32, pool -> 13x13x32
                  + 11 * 11 * 9 * 32 * 32       # conv 32 -> 11x11x32, pool -> 5x5x32 = 800
                  + 800 * 256 + 256 * 10),
    ("deep_cnn", 10): (26 * 26 * 9 * 1 * 32     # conv 32 -> 26x26x32
                       + 24 * 24 * 9 * 32 * 32  # conv 32 -> 24x24x32, pool -> 12x12x32
                       + 10 * 10 * 9 * 32 * 64  # conv 64 -> 10x10x64
                       + 8 * 8 * 9 * 64 * 64    # conv 64 -> 8x8x64, pool -> 4x4x64 = 1024
                       + 1024 * 256 + 256 * 10),
    ("mlp_512", 10): 784 * 512 + 512 * 10,
    ("mlp_512x2", 10): 784 * 512 + 512 * 512 + 512 * 10,
    ("cnn_dropout", 10): (26 * 26 * 9 * 1 * 32  # conv 32 -> 26x26x32
                          + 24 * 24 * 9 * 32 * 64  # conv 64 -> 24x24x64, pool -> 12x12x64 = 9216
                          + 9216 * 128 + 128 * 10),
}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_flops_match_the_hand_computed_count(arch):
    assert (arch, 10) in HAND_MULTIPLY_ADDS, f"add a hand count for {arch}"
    assert flops(arch, "digits") == 2 * HAND_MULTIPLY_ADDS[(arch, 10)]
    assert training_flops(arch, "digits") == 3 * flops(arch, "digits")


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_flops_of_the_parity_output_layer(arch):
    # parity's output is Dense 1 instead of Dense 10: 9 fewer multiply-adds per output input
    last = summarize(arch, "digits")[-2]["output_shape"][-1]
    assert flops(arch, "digits") - flops(arch, "parity") == 2 * last * 9


def test_known_totals():
    assert flops("mlp", "digits") == 668_672
    assert flops("cnn", "digits") == 3_034_368
    assert flops("deep_cnn", "digits") == 19_940_608
