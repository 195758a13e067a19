import pytest

from mnistlab.runs.config import RunConfig


def test_defaults_are_the_keras_recipe():
    config = RunConfig()
    assert (config.task, config.arch, config.epochs, config.batch_size, config.optimizer) == (
        "digits", "cnn", 30, 32, "sgd")
    assert config.validation == "holdout"
    assert config.effective_learning_rate == 0.01


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("task", "letters", "'digits', 'parity'"),
        ("arch", "resnet", "'mlp', 'cnn'"),
        ("epochs", 0, "[1, 1000]"),
        ("epochs", 2.5, "[1, 1000]"),
        ("batch_size", "many", "[1, 60000]"),
        ("batch_size", True, "[1, 60000]"),
        ("optimizer", "lbfgs", "'sgd', 'adam'"),
        ("learning_rate", -0.1, "(0.0, 10.0]"),
        ("learning_rate", float("nan"), "(0.0, 10.0]"),
        ("validation", "kfold", "'holdout', 'fraction', 'test'"),
        ("train_size", 5, "[10, 60000]"),
        ("patience", 0, "[1, 1000]"),
        ("seed", -1, "[0, 2147483647]"),
        ("data", "", "'auto', 'sample' or a path"),
    ],
)
def test_invalid_values_name_the_field_the_allowed_values_and_the_value(field, value, allowed):
    with pytest.raises(ValueError) as info:
        RunConfig(**{field: value})
    message = str(info.value)
    assert message.startswith(field)
    assert allowed in message
    assert repr(value) in message


def test_validation_size_is_checked_against_its_scheme():
    with pytest.raises(ValueError, match="fraction"):
        RunConfig(validation="fraction", validation_size=1.5)
    with pytest.raises(ValueError, match="holdout"):
        RunConfig(validation="holdout", validation_size=0)
    with pytest.raises(ValueError, match="None when validating on the test set"):
        RunConfig(validation="test", validation_size=100)


def test_run_id_is_stable_across_spellings_and_explicit_defaults():
    a = RunConfig(optimizer="Adam", batch_size="32", epochs=3.0)
    b = RunConfig(optimizer="adam", batch_size=32, epochs=3, learning_rate=0.001)
    assert a.run_id("fp") == b.run_id("fp")
    assert len(a.run_id("fp")) == 16


def test_run_id_changes_with_everything_that_changes_the_result():
    base = RunConfig()
    changed = [
        base.replace(task="parity"), base.replace(arch="mlp"), base.replace(epochs=2),
        base.replace(batch_size=64), base.replace(optimizer="adam"), base.replace(learning_rate=0.1),
        base.replace(validation="test"), base.replace(validation_size=5000), base.replace(train_size=1000),
        base.replace(patience=3), base.replace(seed=1),
    ]
    ids = {config.run_id("fp") for config in changed} | {base.run_id("fp"), base.run_id("other data")}
    assert len(ids) == len(changed) + 2


def test_run_id_ignores_how_the_data_was_named():
    assert RunConfig(data="auto").run_id("fp") == RunConfig(data="sample").run_id("fp")


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    config = RunConfig(arch="mlp", patience=3, learning_rate=0.05)
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown configuration field"):
        RunConfig.from_dict({"arch": "mlp", "evil": 1})


def test_label_is_short_and_names_the_essentials():
    assert RunConfig(arch="mlp", epochs=5).label() == "mlp · digits · sgd · bs32 · 5ep"
