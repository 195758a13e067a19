"""Before a launch: what a resolved configuration will really train on, and what is odd about it.

:func:`preflight` turns a :class:`~mnistlab.runs.config.Resolved` configuration into the
images it fits and validates on, problems that refuse the launch (a training set smaller
than one batch, no validation images) and warnings (a request that was cut down to the
data this machine has, a very small validation set, a run that would take long). The time
estimate comes from stored runs of similar configurations. The Train page and ``mnistlab
train`` both say these before anything starts. No TensorFlow; the only I/O is one read of
``/proc/cpuinfo`` (:func:`bf16_supported`: whether this CPU computes bfloat16 natively).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from mnistlab.errors import ConfigError

if TYPE_CHECKING:
    from mnistlab.runs.config import Resolved
    from mnistlab.runs.store import Run

#: A run estimated to train longer than this gets a warning with the estimate before launch.
LONG_RUN_SECONDS = 600.0
#: Fewer validation images than this make validation accuracy coarse (steps of >= 2 %).
FEW_VALIDATION_IMAGES = 50
#: Seconds per epoch on 50,000 images at batch 32 on a 2-core CPU (README's measurements),
#: used only when no similar run is stored.
REFERENCE_SECONDS_PER_50K = {"mlp": 2.1, "cnn": 5.8, "deep_cnn": 15.4}
#: CPU flags (``/proc/cpuinfo``) that mean bfloat16 arithmetic in hardware, as the kernels use it.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=None)
def _bf16_flags(cpuinfo: Path) -> tuple[str, ...] | None:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return tuple(flag for flag in BF16_FLAGS if flag in flags)


def bf16_supported() -> tuple[bool, str]:
    """(whether this CPU computes bfloat16 natively, the reason in words).

    bfloat16 is offered only where the CPU has ``avx512_bf16`` or ``amx_bf16``: elsewhere
    TensorFlow emulates it, slower than float32. Reads ``/proc/cpuinfo`` once per process.
    """
    found = _bf16_flags(CPUINFO)
    if found is None:
        return False, ("this machine does not say what its CPU supports (no /proc/cpuinfo): bfloat16 could be "
                       "emulated and slower")
    if found:
        return True, f"this CPU has {' and '.join(found)}"
    return False, "this CPU lacks AVX512_BF16 and AMX: bfloat16 would be emulated and slower"


def precision_problem(config) -> str | None:
    """Why ``config``'s precision cannot be trained here (None: it can)."""
    if getattr(config, "precision", "float32") != "bfloat16":
        return None
    supported, reason = bf16_supported()
    return None if supported else f"precision bfloat16 is not offered here: {reason}; train in float32"


def check_precision(config) -> None:
    """Raise ConfigError if ``config`` asks for bfloat16 on a CPU without it (see :func:`bf16_supported`)."""
    problem = precision_problem(config)
    if problem is not None:
        raise ConfigError(problem)


@dataclasses.dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # where the rate comes from, in words

    def words(self) -> str:
        return f"about {duration_words(self.seconds)} ({self.basis})"


@dataclasses.dataclass(frozen=True)
class Preflight:
    """What a launch will do, and what would stop or surprise the person launching it."""

    n_fit: int
    n_val: int
    errors: list[str]
    warnings: list[str]
    estimate: Estimate | None

    @property
    def ok(self) -> bool:
        return not self.errors


def split_sizes(resolved: "Resolved") -> tuple[int, int]:
    """(fit images, validation images) of a resolved configuration, as training splits them."""
    explicit = resolved.explicit
    if explicit.validation == "holdout":
        return int(explicit.train_size), int(explicit.validation_size)
    if explicit.validation == "fraction":
        n_fit = int(math.floor(explicit.train_size * (1.0 - float(explicit.validation_size))))
        return n_fit, int(explicit.train_size) - n_fit
    n_test = resolved.source.n_test
    return int(explicit.train_size), int(n_test) if n_test is not None else 0


def duration_words(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def estimate_seconds(resolved: "Resolved", stored: Iterable["Run"] = ()) -> Estimate | None:
    """Training time from stored runs of similar configurations (same architecture, the same batch
    size and precision where there are such runs): their seconds per image-epoch times this run's images and epochs."""
    n_fit, _ = split_sizes(resolved)
    config = resolved.explicit
    rates: dict[bool, list[float]] = {True: [], False: []}
    for run in stored:
        try:
            if run.config.arch != config.arch or not run.history:
                continue
            images = (run.metrics.get("split") or {}).get("fit_images")
            epochs = run.history[1:] or run.history  # the first epoch also builds the graph: not a rate
            seconds = sum(float(h["seconds"]) for h in epochs)
            if not images or seconds <= 0:
                continue
            same = run.config.batch_size == config.batch_size and run.config.precision == config.precision
            rates[same].append(seconds / (images * len(epochs)))
        except (AttributeError, KeyError, TypeError, ValueError):  # an odd record: no basis, not an error
            continue
    similar = rates[True] or rates[False]
    if similar:
        rate = sorted(similar)[len(similar) // 2]
        basis = (f"from {len(similar)} stored {config.arch} run" + ("" if len(similar) == 1 else "s")
                 + ("" if rates[True] else " with another batch size or precision"))
        return Estimate(rate * n_fit * config.epochs, basis)
    reference = REFERENCE_SECONDS_PER_50K.get(config.arch)
    if reference is None:
        return None
    return Estimate(reference / 50_000 * n_fit * config.epochs, "from reference timings on a 2-core CPU")


def preflight(resolved: "Resolved", stored: Iterable["Run"] = (), asked_train_size: int | None = None) -> Preflight:
    """Check a resolved configuration before it is launched (see the module docstring).

    ``asked_train_size``: the training-set size the person asked for (the configuration as given),
    to say so when the data cut it down.
    """
    config = resolved.explicit
    n_fit, n_val = split_sizes(resolved)
    errors: list[str] = []
    warnings: list[str] = []
    if n_fit < config.batch_size:
        errors.append(f"the training set ({n_fit:,} images) is smaller than one batch ({config.batch_size:,}): "
                      f"lower the batch size to at most {n_fit:,}, or train on more images")
    problem = precision_problem(config)
    if problem is not None:
        errors.append(problem)
    if n_val < 1:
        errors.append("the validation set would hold 0 images: hold out at least one image, or validate on "
                      "the test set")
    elif n_val < FEW_VALIDATION_IMAGES:
        warnings.append(f"the validation set holds only {n_val:,} images, so validation accuracy moves in steps "
                        f"of {100 / n_val:.0f} %")
    asked = asked_train_size if asked_train_size is not None else resolved.config.train_size
    if asked is not None and config.validation == "holdout" and asked > n_fit:
        warnings.append(f"{asked:,} training images were asked for, but this data source has {n_fit:,} left "
                        f"after the {n_val:,} held out, so it trains on {n_fit:,}")
    elif asked is not None and config.validation != "holdout" and asked > config.train_size:
        warnings.append(f"{asked:,} training images were asked for, but this data source has "
                        f"{config.train_size:,}, so it trains on {config.train_size:,}")
    estimate = estimate_seconds(resolved, stored)
    if estimate is not None and estimate.seconds > LONG_RUN_SECONDS:
        warnings.append(f"this run would train for {estimate.words()}: {config.epochs} epochs of "
                        f"{n_fit:,} images; lower the epochs or the training-set size for a quicker look")
    return Preflight(n_fit, n_val, errors, warnings, estimate)
