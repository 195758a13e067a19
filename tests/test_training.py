import numpy as np
import pytest

from mnistlab.datasets.mnist import load_mnist
from mnistlab.models.architectures import build_model, weight_shapes
from mnistlab.models.training import Cancelled, batches, prepare_images, split_data, train
from tests.conftest import tiny_config


def test_training_returns_history_test_metrics_predictions_and_versions():
    data = load_mnist("sample")
    seen = []
    result = train(tiny_config(epochs=2), data, on_epoch=lambda record, history: seen.append(record))
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert seen == result.history
    for record in result.history:
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "elapsed"} <= set(record)
        assert record["seconds"] > 0
    assert result.probabilities.shape == (1000, 10)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1, atol=1e-5)
    assert 0.0 <= result.test_accuracy <= 1.0
    assert set(result.versions) >= {"keras", "tensorflow", "numpy", "python", "mnistlab"}
    assert (result.status, result.kept_epoch, result.kept_reason) == ("finished", 2, "last")
    assert [w.shape for w in result.weights] == weight_shapes("mlp", "digits")


def _model(config, weights):
    model = build_model(config.arch, config.task)
    model.compile(loss="categorical_crossentropy" if config.task == "digits" else "binary_crossentropy",
                  metrics=["accuracy"])
    model.set_weights(weights)
    return model


def test_test_loss_and_accuracy_equal_keras_evaluate():
    data = load_mnist("sample")
    config = tiny_config(arch="cnn", epochs=1)
    result = train(config, data)
    from mnistlab.datasets.tasks import get_task

    task = get_task(config.task)
    model = _model(config, result.weights)
    loss, accuracy = model.evaluate(prepare_images(data.x_test, "cnn"), task.targets(data.y_test), verbose=0)
    assert result.test_loss == pytest.approx(loss, rel=1e-4)
    assert result.test_accuracy == pytest.approx(accuracy, abs=1e-6)
    np.testing.assert_allclose(model.predict(prepare_images(data.x_test, "cnn"), verbose=0), result.probabilities,
                               atol=1e-5)


def test_batches_are_the_recipe_preprocessing_without_a_float_copy():
    data = load_mnist("sample")
    pipeline = batches(data.x_test[:70], np.arange(70), 32, "cnn")
    got = np.concatenate([x.numpy() for x, _ in pipeline])
    np.testing.assert_array_equal(got, prepare_images(data.x_test[:70], "cnn"))
    assert [len(y) for _, y in pipeline] == [32, 32, 6]
    shuffled = batches(data.x_test[:70], np.arange(70), 32, "mlp", shuffle_seed=1)
    first, second = ([int(i) for _, y in shuffled for i in y.numpy()] for _ in range(2))
    assert sorted(first) == list(range(70)) and first != second  # every image once, reshuffled each epoch


def test_same_seed_gives_the_same_history():
    data = load_mnist("sample")
    a = train(tiny_config(epochs=2, seed=7), data).history
    b = train(tiny_config(epochs=2, seed=7), data).history
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)


def test_parity_task_trains_a_one_output_binary_model():
    data = load_mnist("sample")
    result = train(tiny_config(task="parity", epochs=1), data)
    assert result.probabilities.shape == (1000, 1)
    labels = data.y_test % 2
    assert result.test_accuracy == pytest.approx(np.mean((result.probabilities[:, 0] > 0.5) == labels), abs=1e-6)


def test_cancel_stops_at_the_next_check_and_returns_nothing():
    data = load_mnist("sample")
    batches = []

    def should_stop():
        batches.append(1)
        return len(batches) >= 3

    with pytest.raises(Cancelled):
        train(tiny_config(epochs=5), data, should_stop=should_stop)
    assert len(batches) == 3  # the third check stopped it; no further block of batches ran


def test_early_stopping_keeps_the_best_val_loss_epoch_and_the_test_metrics_describe_it():
    data = load_mnist("sample")
    # A large learning rate makes validation loss bounce, so the last epoch is not the best.
    config = tiny_config(epochs=8, patience=2, optimizer="sgd", learning_rate=0.3, validation="holdout",
                         validation_size=500, train_size=500)
    result = train(config, data)
    losses = [r["val_loss"] for r in result.history]
    assert result.kept_reason == "best_val_loss"
    assert result.kept_epoch == losses.index(min(losses)) + 1
    assert result.kept_epoch != len(result.history)  # the case that mattered: the last epoch is not kept
    split = split_data(config, data)
    from mnistlab.datasets.tasks import get_task

    model = _model(config, result.weights)
    val_loss, _ = model.evaluate(prepare_images(split.x_val, "mlp"), get_task("digits").targets(split.y_val),
                                 verbose=0)
    assert val_loss == pytest.approx(min(losses), rel=1e-4)
    test_loss, test_accuracy = model.evaluate(prepare_images(data.x_test, "mlp"),
                                              get_task("digits").targets(data.y_test), verbose=0)
    assert (result.test_loss, result.test_accuracy) == (pytest.approx(test_loss, rel=1e-4),
                                                        pytest.approx(test_accuracy, abs=1e-6))


def test_a_loss_that_turns_non_finite_stops_the_run_as_diverged():
    data = load_mnist("sample")
    result = train(tiny_config(epochs=6, optimizer="sgd", learning_rate=10.0), data)
    assert result.status == "diverged" and "became" in result.message
    assert len(result.history) < 6 and result.history  # stopped at once, its history kept
    assert result.test_accuracy is None and result.weights is None and result.probabilities is None


def test_validation_schemes_follow_the_recipes():
    data = load_mnist("sample")
    holdout = split_data(tiny_config(validation="holdout", validation_size=None, train_size=None), data)
    assert (holdout.n_fit, holdout.n_val) == (4000 - 666, 666)  # one sixth, as 10,000 of 60,000
    np.testing.assert_array_equal(holdout.x_val, data.x_train[-666:])
    fraction = split_data(tiny_config(validation="fraction", validation_size=0.25, train_size=400), data)
    assert (fraction.n_fit, fraction.n_val) == (300, 100)  # Keras' validation_split: the last quarter
    np.testing.assert_array_equal(fraction.x_val, data.x_train[300:400])
    test = split_data(tiny_config(validation="test"), data)
    assert test.x_val is data.x_test and "test images" in test.description
    with pytest.raises(ValueError, match="smaller than the 4000 training images"):
        split_data(tiny_config(validation="holdout", validation_size=10_000), data)
