"""Run configuration: one frozen, validated description of a training run, and its id.

:data:`FIELDS` is the one table of configuration constraints (type, allowed values or
range, default, help). It feeds :class:`RunConfig`'s validation, the CLI's options, the
Train page's widgets and the share-link decoder, so a limit is written once.

A configuration is *resolved* against a data source before it is hashed
(:func:`resolve`): sizes and split made explicit (``train_size`` unset and ``50000`` on full
MNIST are the same training, so they get the same id), the data source pinned to the file it
resolved to. The run id is the SHA-256 of the resolved canonical JSON. A run stores that JSON
and its id; reading a run never recomputes ids from today's code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any, Mapping

from mnistlab.errors import ConfigError

if TYPE_CHECKING:
    from mnistlab.datasets.mnist import Dataset, SourceInfo

#: The version of the canonical form (what the run id hashes). Fields added later enter the
#: canonical form only when they differ from their default, so this need not change for them.
#: 2: unresolved sizes (``None`` for defaults); 3: resolved, explicit sizes.
SCHEMA_VERSION = 3

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
#: Numeric precision of training: float32 (the recipes'), or bfloat16 (Keras' ``mixed_bfloat16``
#: policy: compute in bfloat16, variables and the output layer in float32). See
#: :func:`mnistlab.runs.checks.bf16_supported` for where bfloat16 is offered.
PRECISIONS = ("float32", "bfloat16")
VALIDATION_LABELS = {
    "holdout": "hold-out: the last N training images",
    "fraction": "fraction: Keras validation_split of the training images",
    "test": "test set (as one recipe does; not an independent estimate)",
}
#: The recipe's hold-out: 10,000 of the 60,000 training images (one sixth).
DEFAULT_HOLDOUT = 10_000
DEFAULT_FRACTION = 0.25
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 60_000
MAX_TRAIN_SIZE = 60_000
MIN_TRAIN_SIZE = 10
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Field:
    """One configuration field: its type and allowed values, default and help."""

    name: str
    kind: str  # "choice", "int" or "float"
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False  # lo itself is not allowed (learning rate > 0)
    unset: str = ""  # what leaving it unset (None) means; "" = it cannot be unset
    link: str = ""  # its short key in share links
    words: str = ""  # the allowed values in words, where they depend on another field

    @property
    def allowed(self) -> str:
        """The allowed values in words, as error messages and help texts say them."""
        if self.words:
            return self.words
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "int":
            return f"an integer in [{int(self.lo)}, {int(self.hi)}]"
        return f"a number in {'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}]"

    def check(self, value: Any, label: str | None = None) -> Any:
        """``value`` converted to the field's type, or ConfigError naming field, allowed and got."""
        label = label or self.name
        if value is None and self.unset:
            return None
        if self.kind == "choice":
            if isinstance(value, str) and value.strip().lower() in self.choices:
                return value.strip().lower()
            raise _fail(label, self.allowed, value)
        if self.kind == "int":
            return _as_int(label, value, int(self.lo), int(self.hi), self.allowed)
        return _as_float(label, value, self.lo, self.hi, self.open_lo, self.allowed)


def _fail(field: str, allowed: str, got: Any) -> ConfigError:
    return ConfigError(f"{field} must be {allowed}, got {got!r}")


def _as_int(field: str, value: Any, lo: int, hi: int, allowed: str) -> int:
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


def _as_float(field: str, value: Any, lo: float, hi: float, open_lo: bool, allowed: str) -> float:
    if isinstance(value, bool):
        raise _fail(field, allowed, value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise _fail(field, allowed, value) from None
    if not math.isfinite(number) or number > hi or number < lo or (open_lo and number == lo):
        raise _fail(field, allowed, value)
    return number


_ARCH_PLACEHOLDER = ("cnn",)  # filled from the architecture registry below (no import cycle)

#: The table of configuration fields, in the order forms and the CLI show them.
FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("task", "choice", "digits", "digits: 10 classes; parity: odd (1) vs even (0)", choices=TASKS, link="t"),
    Field("arch", "choice", "cnn", "the model (see `mnistlab archs`)", choices=_ARCH_PLACEHOLDER),
    Field("epochs", "int", 30, "passes over the training images (the recipes use 30)", lo=1, hi=MAX_EPOCHS,
          link="e"),
    Field("batch_size", "int", 32, "images per gradient step (Keras recipe 32, chapter 16 200)", lo=1,
          hi=MAX_BATCH_SIZE, link="b"),
    Field("optimizer", "choice", "sgd", "the Keras recipe uses SGD, chapter 16 Adam", choices=OPTIMIZERS, link="o"),
    Field("learning_rate", "float", None, "step size", lo=0.0, hi=10.0, open_lo=True,
          unset="the optimizer's Keras default", link="lr"),
    Field("validation", "choice", "holdout", "holdout: the last N training images; fraction: Keras' "
          "validation_split; test: the test set (as one recipe does)", choices=VALIDATION_SCHEMES, link="v"),
    Field("validation_size", "float", None, "holdout: images held out; fraction: the share held out", lo=0.0,
          hi=MAX_TRAIN_SIZE - 1, unset="holdout: one sixth of the training images (10,000 of 60,000); fraction: 0.25",
          link="vs", words=f"for holdout an integer in [1, {MAX_TRAIN_SIZE - 1}], for fraction a number in (0, 0.9]"),
    Field("train_size", "int", None, "use only the first N training images", lo=MIN_TRAIN_SIZE,
          hi=MAX_TRAIN_SIZE, unset="all of them", link="n"),
    Field("patience", "int", None, "early stopping on validation loss after N epochs without improvement "
          "(keeps the best weights)", lo=1, hi=MAX_EPOCHS, unset="no early stopping", link="p"),
    Field("seed", "int", 0, "random seed (weights, shuffling, dropout)", lo=0, hi=MAX_SEED, link="s"),
    Field("precision", "choice", "float32", "float32: the recipes'; bfloat16: compute in bfloat16 (Keras' "
          "mixed_bfloat16: weights and the output layer stay float32), faster on CPUs with AVX512_BF16 or AMX",
          choices=PRECISIONS, link="pr"),
)}
#: ``validation_size`` per validation scheme (the test set needs none): what RunConfig checks.
VALIDATION_SIZES: dict[str, Field] = {
    "holdout": Field("validation_size", "int", None, "images held out: the last N training images", lo=1,
                     hi=MAX_TRAIN_SIZE - 1, unset="one sixth of the training images (10,000 of 60,000)", link="vs"),
    "fraction": Field("validation_size", "float", None, "the share of the training images held out (Keras' "
                      "validation_split)", lo=0.0, hi=0.9, open_lo=True, unset=f"{DEFAULT_FRACTION}", link="vs"),
}
#: Fields added after the canonical form of schema 3 was fixed: in the id only when not default.
LATER_FIELDS: tuple[str, ...] = ("precision",)


def arch_field() -> Field:
    from mnistlab.models.architectures import ARCHITECTURES  # light: no TensorFlow

    return dataclasses.replace(FIELDS["arch"], choices=tuple(ARCHITECTURES))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A validated training configuration.

    Defaults are the Keras MNIST recipe's: a CNN on digits, SGD, batch 32, the last
    10,000 training images held out for validation.

    ``validation_size`` is the number of held-out images for ``holdout`` (None: one sixth
    of the training images, the recipe's 10,000 of 60,000), the fraction for ``fraction``
    (None: 0.25), and unset for ``test``. ``train_size`` limits the training images used
    (for ``fraction``: before the split). ``data`` says where the images come from
    (``auto``, ``sample`` or a path to an ``.npz``); it is not part of the run id, the
    fingerprint of the data it resolves to is. ``precision`` is ``float32`` (the recipes') or
    ``bfloat16`` (Keras' mixed_bfloat16); a later field, in the id only when it is bfloat16.
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
    precision: str = "float32"
    data: str = "auto"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name, field in FIELDS.items():
            if name == "validation_size":
                continue
            set_(name, (arch_field() if name == "arch" else field).check(getattr(self, name)))
        if self.validation_size is not None:
            if self.validation in VALIDATION_SIZES:
                label = "holdout images" if self.validation == "holdout" else "fraction"
                size = VALIDATION_SIZES[self.validation].check(self.validation_size, f"validation_size ({label})")
            else:
                raise ConfigError(f"validation_size must be left unset when validating on the test set "
                                  f"(the test set is the validation set), got {self.validation_size!r}")
            set_("validation_size", size)
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
        """The validation size with the fraction default filled in (holdout's depends on the data)."""
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
        if self.precision == "bfloat16":
            parts.append("bf16")
        return " · ".join(parts)

    # -- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        if not isinstance(values, Mapping):
            raise ConfigError(f"a run configuration must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    # -- identity --------------------------------------------------------------------
    def resolved(self, n_train: int) -> "RunConfig":
        """This configuration with its sizes explicit for a data source of ``n_train`` training images.

        Holdout: ``validation_size`` images held out (default one sixth), ``train_size`` of the
        rest fitted on (default all). Fraction: ``train_size`` images (default all) split by
        ``validation_size`` (default 0.25). Test: ``train_size`` images (default all).
        """
        if self.validation == "holdout":
            n_val = self.validation_size if self.validation_size is not None else n_train // 6
            if n_val >= n_train:
                raise ConfigError(f"validation_size (holdout images) must be smaller than the {n_train:,} "
                                  f"training images of this data source, got {n_val:,}")
            pool = n_train - n_val
            return self.replace(validation_size=int(n_val), train_size=min(self.train_size or pool, pool))
        base = min(self.train_size or n_train, n_train)
        if self.validation == "fraction":
            return self.replace(validation_size=float(self.effective_validation_size), train_size=base)
        return self.replace(train_size=base)

    def canonical(self, data_fingerprint: str) -> dict[str, Any]:
        """Everything that changes the result (this config must be resolved: sizes explicit)."""
        if self.train_size is None or (self.validation != "test" and self.validation_size is None):
            raise ConfigError("only a resolved configuration (sizes explicit, see RunConfig.resolved) has a "
                              "canonical form")
        if not isinstance(data_fingerprint, str) or not data_fingerprint:
            raise ConfigError(f"data_fingerprint must be a non-empty string, got {data_fingerprint!r}")
        form = {
            "schema": SCHEMA_VERSION,
            "task": self.task,
            "arch": self.arch,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "learning_rate": self.effective_learning_rate,
            "validation": self.validation,
            "validation_size": self.validation_size,
            "train_size": self.train_size,
            "patience": self.patience,
            "seed": self.seed,
            "data": data_fingerprint,
        }
        for name in LATER_FIELDS:
            if getattr(self, name) != FIELDS[name].default:
                form[name] = getattr(self, name)
        return form


def canonical_json(form: Mapping[str, Any]) -> str:
    return json.dumps(form, sort_keys=True, separators=(",", ":"))


def id_of(canonical_text: str) -> str:
    """A 16-hex-digit run id: the SHA-256 of the canonical JSON text."""
    return hashlib.sha256(canonical_text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A configuration resolved against its data: what a run id names."""

    config: RunConfig  # as given, with ``data`` pinned to the source it resolved to
    explicit: RunConfig  # the same with its sizes explicit: what is trained
    source: "SourceInfo"
    canonical: dict[str, Any]
    run_id: str

    @property
    def canonical_json(self) -> str:
        return canonical_json(self.canonical)


def resolve(config: RunConfig, data: "Dataset | SourceInfo | None" = None) -> Resolved:
    """Resolve ``config`` against its data source (the one place page, CLI and worker do it).

    ``data``: a loaded :class:`Dataset` or a :class:`SourceInfo`; by default ``config.data``
    is resolved (``auto`` follows the order in :mod:`mnistlab.datasets.mnist`) and pinned.
    """
    from mnistlab.datasets.mnist import Dataset, resolve_source

    if isinstance(data, Dataset):
        info = data.source
    else:
        info = data if data is not None else resolve_source(config.data)
    pinned = config.replace(data=info.pinned) if info.kind != "arrays" else config
    explicit = pinned.resolved(info.n_train)
    form = explicit.canonical(info.fingerprint)
    return Resolved(pinned, explicit, info, form, id_of(canonical_json(form)))
