import numpy as np
import pytest

from mnistlab.datasets.tasks import TASKS
from mnistlab.models.architectures import ARCHITECTURES, build_model, count_params, summarize


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
