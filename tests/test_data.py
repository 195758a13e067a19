
import numpy as np
import pytest

from mnistlab.datasets.mnist import DataError, Dataset, load_mnist, resolve_source


def write_npz(path, n_train=60, n_test=20, **override):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test) % 10,
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_shipped_sample_is_a_balanced_deterministic_split_of_real_digits():
    data = load_mnist("sample")
    assert data.x_train.shape == (4000, 28, 28) and data.x_test.shape == (1000, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.min() == 0 and data.y_train.max() == 9
    assert data.class_counts()["train"].tolist() == [400] * 10
    assert data.class_counts()["test"].tolist() == [100] * 10
    assert data.source.kind == "sample" and "asked for" in data.source.reason
    # Real handwriting: about a fifth of the pixels are ink, not noise.
    assert 0.1 < (data.x_train > 0).mean() < 0.3
    again = resolve_source("sample")
    assert again.fingerprint == data.fingerprint


def test_explicit_npz_path_is_loaded_and_fingerprinted(tmp_path):
    path = write_npz(tmp_path / "mini.npz")
    data = load_mnist(str(path))
    assert data.x_train.shape == (60, 28, 28)
    assert data.source.kind == "file" and data.source.path == str(path)
    assert data.fingerprint.startswith("sha256:")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"y_test": None}, "not an MNIST .npz file: missing y_test (expected x_train, y_train, x_test, y_test)"),
        ({"x_train": np.zeros((60, 28, 27), np.uint8)}, "x_train must have shape (N, 28, 28)"),
        ({"x_test": np.zeros((20, 28, 28), np.float32)}, "x_test must be uint8"),
        ({"y_train": np.full(60, 11)}, "labels must be in 0-9"),
        ({"y_train": np.zeros(59, int)}, "y_train must have shape (60,)"),
    ],
)
def test_malformed_npz_raises_a_clear_error(tmp_path, override, message):
    path = write_npz(tmp_path / "bad.npz", **override)
    with pytest.raises(DataError) as info:
        load_mnist(str(path))
    assert message in str(info.value)


def test_pickled_arrays_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    objects = np.array([{"boom": 1}] * 60, dtype=object)
    np.savez(path, x_train=objects, y_train=np.zeros(60, int), x_test=objects, y_test=np.zeros(60, int))
    with pytest.raises(DataError, match="x_train must have shape"):  # refused from its header: nothing unpickled
        load_mnist(str(path))


def test_missing_explicit_file_is_an_error_that_says_what_to_give(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_mnist(str(tmp_path / "nope.npz"))


def test_auto_uses_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "env.npz")
    monkeypatch.setenv("MNISTLAB_MNIST", str(path))
    info = resolve_source("auto")
    assert info.kind == "file" and "MNISTLAB_MNIST" in info.reason


def test_auto_falls_back_to_the_sample_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_MNIST", str(tmp_path / "missing.npz"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").write_bytes(b"not the real file")
    info = resolve_source("auto")
    assert info.kind == "sample"
    assert "MNISTLAB_MNIST is set but unusable" in info.reason
    assert "does not match Keras' SHA-256" in info.reason
    assert "no download was tried" in info.reason


def test_dataset_from_arrays_is_validated_and_fingerprinted():
    x = np.zeros((20, 28, 28), np.uint8)
    y = np.arange(20) % 10
    data = Dataset.from_arrays(x, y, x, y)
    assert data.source.kind == "arrays" and data.fingerprint.startswith("arrays:")
    with pytest.raises(DataError):
        Dataset.from_arrays(x.astype(float), y, x, y)
