"""Run configuration: one frozen, validated description of a training run.

A :class:`RunConfig` holds everything that changes the result of a training run. Its
:meth:`RunConfig.run_id` is a stable hash of a canonical form of those fields, the data
source's fingerprint and a schema version, and nothing else. Two configurations that
train the same model on the same data get the same id, whatever order or spelling
(``"Adam"`` vs ``"adam"``, ``batch_size=32`` vs ``"32"``) they were given in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping

#: Bumped whenever training or the stored format changes in a way that changes results.
#: 2: uint8 input pipeline with tf.data reshuffling (a different, equally random order).
SCHEMA_VERSION = 2

TASKS = ("digits", "parity")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "nadam", "adamw")
#: Keras 3 defaults, shown in the UI and used when ``learning_rate`` is None.
DEFAULT_LEARNING_RATES = {
    "sgd": 0.01,
    "adam": 0.001,
    "rmsprop": 0.001,
    "adagrad": 0.001,
    "nadam": 0.001,
    "adamw": 0.001,
}
VALIDATION_SCHEMES = ("holdout", "fraction", "test")
VALIDATION_LABELS = {
    "holdout": "hold-out: the last N training images",
    "fraction": "fraction: Keras validation_split of the training images",
    "test": "test set (as one recipe does; not an independent estimate)",
}
#: The recipe's hold-out: 10,000 of the 60,000 training images.
DEFAULT_HOLDOUT = 10_000
DEFAULT_FRACTION = 0.25
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 60_000
MAX_TRAIN_SIZE = 60_000


def _fail(field: str, allowed: str, got: Any) -> ValueError:
    return ValueError(f"{field} must be {allowed}, got {got!r}")


def _as_int(field: str, value: Any, lo: int, hi: int) -> int:
    allowed = f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool):
        raise _fail(field, allowed, value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _fail(field, allowed, value)
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _fail(field, allowed, value) from None
    if not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(field, allowed, value)
    return value


def _as_float(field: str, value: Any, lo: float, hi: float, *, open_lo: bool = True) -> float:
    lo_bracket = "(" if open_lo else "["
    allowed = f"a number in {lo_bracket}{lo}, {hi}]"
    if isinstance(value, bool):
        raise _fail(field, allowed, value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(field, allowed, value) from None
    if not math.isfinite(number) or number > hi or number < lo or (open_lo and number == lo):
        raise _fail(field, allowed, value)
    return number


def _as_choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise _fail(field, "one of " + ", ".join(repr(c) for c in choices), value)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A validated training configuration.

    Defaults are the Keras MNIST recipe's: a CNN on digits, SGD, batch 32, the last
    10,000 training images held out for validation.

    ``validation_size`` is the number of held-out images for ``holdout`` (None: the
    recipe's 10,000 of 60,000, i.e. one sixth of a smaller data set), the fraction for
    ``fraction`` (None: 0.25), and must be None for ``test``. ``train_size`` limits the
    training images used (for ``fraction``: before the split). ``data`` says where the
    images come from (``auto``, ``sample`` or a path to an ``.npz``); it is not part of
    the run id, the fingerprint of the data it resolves to is.
    """

    task: str = "digits"
    arch: str = "cnn"
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    learning_rate: float | None = None
    validation: str = "holdout"
    validation_size: float | int | None = None
    train_size: int | None = None
    patience: int | None = None
    seed: int = 0
    data: str = "auto"

    def __post_init__(self) -> None:
        from mnistlab.models.architectures import ARCHITECTURES  # light: no TensorFlow

        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("task", _as_choice("task", self.task, TASKS))
        set_("arch", _as_choice("arch", self.arch, tuple(ARCHITECTURES)))
        set_("epochs", _as_int("epochs", self.epochs, 1, MAX_EPOCHS))
        set_("batch_size", _as_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE))
        set_("optimizer", _as_choice("optimizer", self.optimizer, OPTIMIZERS))
        if self.learning_rate is not None:
            set_("learning_rate", _as_float("learning_rate", self.learning_rate, 0.0, 10.0))
        set_("validation", _as_choice("validation", self.validation, VALIDATION_SCHEMES))
        if self.validation_size is not None:
            if self.validation == "holdout":
                size = _as_int("validation_size (holdout images)", self.validation_size, 1, 59_999)
            elif self.validation == "fraction":
                size = _as_float("validation_size (fraction)", self.validation_size, 0.0, 0.9)
            else:
                raise _fail("validation_size", "None when validating on the test set", self.validation_size)
            set_("validation_size", size)
        if self.train_size is not None:
            set_("train_size", _as_int("train_size", self.train_size, 10, MAX_TRAIN_SIZE))
        if self.patience is not None:
            set_("patience", _as_int("patience", self.patience, 1, MAX_EPOCHS))
        set_("seed", _as_int("seed", self.seed, 0, 2**31 - 1))
        if not isinstance(self.data, str) or not self.data.strip():
            raise _fail("data", "'auto', 'sample' or a path to an .npz file", self.data)
        data = self.data.strip()
        set_("data", data.lower() if data.lower() in ("auto", "sample") else data)

    # -- derived values -------------------------------------------------------------
    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.optimizer]

    @property
    def effective_validation_size(self) -> float | int | None:
        """The validation size with the scheme's default filled in (holdout: None means
        one sixth of the training images, i.e. 10,000 of 60,000)."""
        if self.validation == "fraction":
            return self.validation_size if self.validation_size is not None else DEFAULT_FRACTION
        return self.validation_size

    def label(self) -> str:
        """A short human name, e.g. ``cnn · digits · sgd · bs32 · 30ep``."""
        parts = [self.arch, self.task, self.optimizer]
        if self.learning_rate is not None:
            parts.append(f"lr{self.learning_rate:g}")
        parts += [f"bs{self.batch_size}", f"{self.epochs}ep"]
        if self.train_size is not None:
            parts.append(f"n{self.train_size}")
        if self.validation != "holdout":
            parts.append(f"val={self.validation}")
        if self.patience is not None:
            parts.append(f"es{self.patience}")
        if self.seed:
            parts.append(f"seed{self.seed}")
        return " · ".join(parts)

    # -- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        if not isinstance(values, Mapping):
            raise ValueError(f"a run configuration must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def canonical(self, data_fingerprint: str, schema: int = SCHEMA_VERSION) -> dict[str, Any]:
        """Everything that changes the result, with defaults made explicit."""
        return {
            "schema": schema,
            "task": self.task,
            "arch": self.arch,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "learning_rate": self.effective_learning_rate,
            "validation": self.validation,
            "validation_size": self.effective_validation_size,
            "train_size": self.train_size,
            "patience": self.patience,
            "seed": self.seed,
            "data": data_fingerprint,
        }

    def run_id(self, data_fingerprint: str, schema: int = SCHEMA_VERSION) -> str:
        """A 16-hex-digit id: the SHA-256 of the canonical JSON form.

        ``schema`` is the version the run was trained under (older stored runs keep theirs).
        """
        if not isinstance(data_fingerprint, str) or not data_fingerprint:
            raise ValueError(f"data_fingerprint must be a non-empty string, got {data_fingerprint!r}")
        text = json.dumps(self.canonical(data_fingerprint, schema), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
