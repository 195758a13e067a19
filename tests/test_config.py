import pytest

from mnistlab.datasets.mnist import SourceInfo
from mnistlab.errors import ConfigError
from mnistlab.runs.config import FIELDS, RunConfig, arch_field, resolve


def run_id(config: RunConfig, fingerprint: str = "fp", n_train: int = 60_000) -> str:
    """The id of ``config`` on a data source of ``n_train`` training images with this fingerprint."""
    source = SourceInfo("file", "/data/mnist.npz", fingerprint, "a test source", n_train=n_train, n_test=10_000)
    return resolve(config, source).run_id


def table_field(name: str):
    return arch_field() if name == "arch" else FIELDS[name]


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
        ("learning_rate", -0.1, "(0, 10]"),
        ("learning_rate", float("nan"), "(0, 10]"),
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
    with pytest.raises(ValueError, match="left unset when validating on the test set"):
        RunConfig(validation="test", validation_size=100)


def test_run_id_is_stable_across_spellings_and_explicit_defaults():
    a = RunConfig(optimizer="Adam", batch_size="32", epochs=3.0)
    b = RunConfig(optimizer="adam", batch_size=32, epochs=3, learning_rate=0.001)
    assert run_id(a) == run_id(b)
    assert len(run_id(a)) == 16
    # unset sizes and their explicit values on full MNIST are the same training
    assert run_id(RunConfig(validation_size=10_000, train_size=50_000)) == run_id(RunConfig())


def test_run_id_changes_with_everything_that_changes_the_result():
    base = RunConfig()
    changed = [
        base.replace(task="parity"), base.replace(arch="mlp"), base.replace(epochs=2),
        base.replace(batch_size=64), base.replace(optimizer="adam"), base.replace(learning_rate=0.1),
        base.replace(validation="test"), base.replace(validation_size=5000), base.replace(train_size=1000),
        base.replace(patience=3), base.replace(seed=1),
    ]
    ids = {run_id(config) for config in changed} | {run_id(base), run_id(base, "other data")}
    assert len(ids) == len(changed) + 2


def test_run_id_ignores_how_the_data_was_named():
    assert run_id(RunConfig(data="auto")) == run_id(RunConfig(data="sample"))


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    config = RunConfig(arch="mlp", patience=3, learning_rate=0.05)
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown configuration field"):
        RunConfig.from_dict({"arch": "mlp", "evil": 1})


def test_label_is_short_and_names_the_essentials():
    assert RunConfig(arch="mlp", epochs=5).label() == "mlp · digits · sgd · bs32 · 5ep"


# -- the table of fields ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FIELDS))
def test_every_field_has_help_and_a_default_that_passes_its_own_check(name):
    field = table_field(name)
    assert field.name == name and field.kind in ("choice", "int", "float")
    assert field.help.strip() and field.allowed
    assert field.check(field.default) == field.default
    assert getattr(RunConfig(), name) == field.default  # RunConfig's defaults are the table's
    if field.default is None:
        assert field.unset, f"{name} defaults to unset but the table does not say what that means"
    assert "None" not in field.help + field.unset + field.allowed


def _out_of_range(field):
    """Values the table refuses: a wrong word, or just below and just above the range."""
    if field.kind == "choice":
        return ["nope", ""]
    if field.kind == "int":
        return [int(field.lo) - 1, int(field.hi) + 1]
    return [field.lo if field.open_lo else field.lo - 1, field.hi + 1]


@pytest.mark.parametrize("scheme, label", [("holdout", "holdout images"), ("fraction", "fraction")])
def test_validation_size_is_checked_by_its_schemes_row_of_the_table(scheme, label):
    from mnistlab.runs.config import VALIDATION_SIZES

    field = VALIDATION_SIZES[scheme]
    for value in _out_of_range(field):
        with pytest.raises(ConfigError) as info:
            RunConfig(validation=scheme, validation_size=value)
        assert str(info.value) == f"validation_size ({label}) must be {field.allowed}, got {value!r}"
        assert field.allowed in FIELDS["validation_size"].allowed  # the CLI's help says both


@pytest.mark.parametrize("name", [name for name in FIELDS if name != "validation_size"])
def test_run_config_refuses_a_bad_value_with_the_tables_words(name):
    field = table_field(name)
    for value in _out_of_range(field):
        with pytest.raises(ConfigError) as info:
            RunConfig(**{name: value})
        assert str(info.value) == f"{name} must be {field.allowed}, got {value!r}"
        with pytest.raises(ConfigError) as checked:
            field.check(value)
        assert str(checked.value) == str(info.value)
