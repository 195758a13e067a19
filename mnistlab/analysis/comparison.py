"""Comparing many runs at once (3 to 300): names, seed groups, mean curves, axis ranges, importance.

The pure logic behind the *Compare at scale* page. Runs are read by duck typing: a function
here uses only ``run_id``, ``config`` (a :class:`~mnistlab.runs.config.RunConfig`),
``canonical`` (the resolved configuration the run id hashes), ``history`` (one dict per
epoch) and ``metrics``, so a test can pass small stand-ins. NumPy and pandas;
scikit-learn only inside :func:`importance`. No plotting, no Streamlit, no TensorFlow.

- :func:`differing_fields`, :func:`short_names`, :func:`shared_caption`: a legend that names
  only what differs between the runs, and one sentence for what they share. Fields are
  compared in their resolved (canonical) form, so an unset default and the same value set
  explicitly are the same.
- :func:`seed_groups`, :func:`group_curve`, :func:`group_summary`: runs that differ only in
  their seed, as one group with a mean curve and mean ± std figures.
- :func:`robust_range`: a y range that one diverged run cannot flatten the others into.
- :func:`varying_parameters`, :func:`importance`: which hyperparameters matter, estimated
  by cross-validated permutation importance over a table of runs.
- :func:`unique_prefixes`: short run ids that stay unambiguous (links resolve them with
  :func:`mnistlab.views.share.resolve`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mnistlab.runs.config import DEFAULT_FRACTION, DEFAULT_HOLDOUT, DEFAULT_LEARNING_RATES, FIELDS

#: Canonical keys that are not configuration: the version of the canonical form.
_NOT_FIELDS = ("schema",)
#: The order of the parts of a short name: RunConfig.label's order, then the rest.
_NAME_ORDER = ("arch", "task", "optimizer", "learning_rate", "batch_size", "epochs", "train_size", "validation",
               "validation_size", "patience", "seed")
#: The order of the phrases of a shared caption.
_CAPTION_ORDER = ("task", "arch", "optimizer", "learning_rate", "batch_size", "epochs", "validation",
                  "validation_size", "train_size", "patience", "seed")

#: robust_range: the core width used is at least this share of the core's magnitude (linear axes).
_RELATIVE = 0.02

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
X_AXES = ("epoch", "elapsed")


# -- what differs, and names that say it ------------------------------------------------------
def _value(run, key: str) -> Any:
    """The run's resolved value of ``key``; a later field missing from the canonical form is its default."""
    if key in run.canonical:
        return run.canonical[key]
    return FIELDS[key].default if key in FIELDS else None


def _keys(runs: Sequence) -> list[str]:
    """Every configuration key of these runs: FIELDS order, then later keys (sorted), then ``data``."""
    present = set().union(*(run.canonical.keys() for run in runs)) if runs else set()
    extra = sorted(present - set(FIELDS) - set(_NOT_FIELDS) - {"data"})
    return [*FIELDS, *extra, "data"]


def differing_fields(runs: Sequence) -> list[str]:
    """The configuration fields whose resolved values differ among ``runs``.

    In :data:`~mnistlab.runs.config.FIELDS` order, then keys added to the canonical form later
    (such as ``precision``; absent means its default), then ``data`` when the data fingerprints
    differ. Values come from ``run.canonical``, so an unset default equals the value set explicitly.
    """
    runs = list(runs)
    if len(runs) < 2:
        return []
    return [key for key in _keys(runs) if len({_hashable(_value(run, key)) for run in runs}) > 1]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _part(key: str, value: Any) -> str:
    """One part of a short name, in RunConfig.label's style (``bs32``, ``30ep``, ``lr0.01``)."""
    if key in ("arch", "task", "optimizer"):
        return str(value)
    if key == "learning_rate":
        return f"lr{value:g}"
    if key == "batch_size":
        return f"bs{value}"
    if key == "epochs":
        return f"{value}ep"
    if key == "train_size":
        return f"n{value}"
    if key == "validation":
        return f"val={value}"
    if key == "validation_size":
        return "" if value is None else f"val{value:g}"
    if key == "patience":
        return "no es" if value is None else f"es{value}"
    if key == "seed":
        return f"seed{value}"
    if key == "data":
        return f"data {str(value)[:6]}"
    if key == "precision":
        return {"bfloat16": "bf16", "float32": "f32"}.get(value, f"precision={value}")
    return f"{key}={'default' if value is None else value}"


def _implied(key: str, run, shown: Sequence[str]) -> bool:
    """True when a part says nothing new: the optimizer's default learning rate next to the optimizer,
    the scheme's default validation size next to the scheme."""
    value = _value(run, key)
    if key == "learning_rate" and "optimizer" in shown:
        return value == DEFAULT_LEARNING_RATES.get(_value(run, "optimizer"))
    if key == "validation_size" and "validation" in shown:
        scheme = _value(run, "validation")
        return value is None or (scheme, value) in (("holdout", DEFAULT_HOLDOUT), ("fraction", DEFAULT_FRACTION))
    return False


def _name(run, shown: Sequence[str]) -> str:
    parts = [_part(key, _value(run, key)) for key in shown if not _implied(key, run, shown)]
    parts = [part for part in parts if part]
    return " · ".join(parts) if parts else str(_value(run, "arch"))


def short_names(runs: Sequence, *, without: Iterable[str] = ()) -> dict[str, str]:
    """Each run's legend name: only the fields that differ among ``runs`` (minus ``without``).

    Parts as :meth:`RunConfig.label` writes them, e.g. ``cnn · adam · lr0.01 · bs128 · 3ep ·
    seed3`` (also ``val=fraction``, ``val0.2`` for a validation size, ``n5000``, ``es3`` /
    ``no es``, ``data 1a2b3c``, ``precision=...``). A learning rate that is its optimizer's
    default is left out when the optimizer is named, as is a scheme's default validation size.
    When nothing differs the name is the run's architecture. Runs whose names would be equal
    get `` · <id prefix>`` (the shortest prefix, at least 4 characters, that tells them apart).
    """
    runs = list(runs)
    without = set(without)
    unknown = sorted(without - set(_keys(runs)))
    if unknown:
        raise ValueError(f"without must name configuration fields ({', '.join(_keys(runs))}), got {unknown}")
    differing = [key for key in differing_fields(runs) if key not in without]
    shown = [key for key in _NAME_ORDER if key in differing] + [key for key in differing if key not in _NAME_ORDER]
    names = {run.run_id: _name(run, shown) for run in runs}
    by_name: dict[str, list[str]] = {}
    for run_id, name in names.items():
        by_name.setdefault(name, []).append(run_id)
    for name, ids in by_name.items():
        if len(ids) > 1:
            prefixes = unique_prefixes(ids, ids)
            for run_id in ids:
                names[run_id] = f"{name} · {prefixes[run_id]}"
    return names


def full_name(run) -> str:
    """The run's whole label and id prefix, for hover texts: ``cnn · digits · sgd · bs32 · 30ep · 1a2b3c``."""
    return f"{run.config.label()} · {run.run_id[:6]}"


def _phrase(key: str, run, shared: set[str]) -> str:
    """What all runs share in ``key``, in words ("" when it goes without saying)."""
    value = _value(run, key)
    scheme = _value(run, "validation") if "validation" in shared else None
    if key in ("task", "arch", "optimizer"):
        return str(value)
    if key == "learning_rate":
        implied = "optimizer" in shared and value == DEFAULT_LEARNING_RATES.get(_value(run, "optimizer"))
        return "" if implied else f"learning rate {value:g}"
    if key == "batch_size":
        return f"batch {value:,}"
    if key == "epochs":
        return f"{value:,} epoch{'s' if value != 1 else ''}"
    if key == "validation":
        size = _value(run, "validation_size") if "validation_size" in shared else None
        if value == "holdout":
            return f"hold-out {size:,}" if size is not None else "hold-out"
        if value == "fraction":
            return f"validation fraction {size:g}" if size is not None else "validation fraction"
        return "validated on the test set"
    if key == "validation_size":
        return "" if scheme is not None or value is None else f"validation size {value:g}"
    if key == "train_size":
        if scheme == "fraction":
            return f"{value:,} images before the split"
        return f"fit {value:,} images" if scheme is not None else f"{value:,} training images"
    if key == "patience":
        return "" if value is None else f"early stopping after {value}"
    if key == "seed":
        return f"seed {value}"
    if key == "data":
        return ""  # a fingerprint all runs share tells a reader nothing
    if key in FIELDS and value == FIELDS[key].default and key not in _CAPTION_ORDER:
        return ""  # a later field at its default (float32): as before it existed
    return f"{key} {value}"


def shared_caption(runs: Sequence) -> str:
    """One plain sentence of what all ``runs`` share (the fields that do not differ), e.g.
    ``All 12 runs: digits · sgd · batch 32 · 30 epochs · hold-out 10,000 · fit 50,000 images · seed 0``.
    """
    runs = list(runs)
    if not runs:
        return "No runs."
    differing = set(differing_fields(runs))
    shared = set(_keys(runs)) - differing
    order = [key for key in _CAPTION_ORDER if key in shared] + \
            [key for key in _keys(runs) if key in shared and key not in _CAPTION_ORDER]
    phrases = [phrase for phrase in (_phrase(key, runs[0], shared) for key in order) if phrase]
    who = "1 run" if len(runs) == 1 else "Both runs" if len(runs) == 2 else f"All {len(runs)} runs"
    if not phrases:
        return f"{who} differ in every setting."
    return f"{who}: {' · '.join(phrases)}"


# -- seed groups --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SeedGroup:
    """Runs of one configuration that differ only in their seed."""

    key: str  # 16 hex digits: the hash of the canonical form without seed
    runs: tuple
    name: str  # the legend name, e.g. ``adam · lr0.01 (n=5)``

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(run.run_id for run in self.runs)


def _unique(runs: Iterable) -> list:
    """``runs`` with each run id once (the first)."""
    seen: set[str] = set()
    return [run for run in runs if not (run.run_id in seen or seen.add(run.run_id))]


def _seedless_key(run) -> str:
    form = {key: value for key, value in run.canonical.items() if key != "seed" and key not in _NOT_FIELDS}
    return hashlib.sha256(json.dumps(form, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def seed_groups(runs: Sequence) -> list[SeedGroup]:
    """The runs grouped by their canonical configuration without ``seed``, in order of first appearance.

    Everything else must match, the data fingerprint and any later field (such as
    ``precision``) included. A run listed twice counts once. Each group's name is the short
    name of its first run among the groups' first runs, without seed, plus `` (n=5)``.
    """
    members: dict[str, list] = {}
    for run in _unique(runs):
        members.setdefault(_seedless_key(run), []).append(run)
    names = short_names([group[0] for group in members.values()], without=("seed",))
    return [SeedGroup(key, tuple(group), f"{names[group[0].run_id]} (n={len(group)})")
            for key, group in members.items()]


def _number(value: Any) -> float:
    """A finite float, or NaN for None, non-numbers and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def group_curve(runs: Sequence, metric: str, x: str = "epoch") -> pd.DataFrame:
    """The mean curve of ``metric`` over ``runs``, epoch by epoch.

    Columns ``epoch, x, mean, std, min, max, n``: at each epoch, the statistics of the runs
    that have a finite value there (runs may stop early); ``std`` is the sample standard
    deviation (ddof=1), 0.0 for one run. ``x`` is the epoch, or for ``x="elapsed"`` the mean
    elapsed seconds of those runs.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(map(repr, X_AXES))}, got {x!r}")
    points: dict[int, list[tuple[float, float]]] = {}
    for run in _unique(runs):
        for position, record in enumerate(run.history, start=1):
            epoch = record.get("epoch", position)
            epoch = position if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) else int(epoch)
            value = _number(record.get(metric))
            if not math.isnan(value):
                points.setdefault(epoch, []).append((value, _number(record.get("elapsed"))))
    rows = []
    for epoch in sorted(points):
        values = np.array([value for value, _ in points[epoch]])
        elapsed = np.array([seconds for _, seconds in points[epoch]])
        where = float(epoch) if x == "epoch" else (float(np.nanmean(elapsed)) if np.isfinite(elapsed).any()
                                                   else math.nan)
        rows.append({"epoch": epoch, "x": where, "mean": float(values.mean()),
                     "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                     "min": float(values.min()), "max": float(values.max()), "n": len(values)})
    frame = pd.DataFrame(rows, columns=["epoch", "x", "mean", "std", "min", "max", "n"])
    return frame.astype({"epoch": "int64", "n": "int64", "x": "float64", "mean": "float64", "std": "float64",
                         "min": "float64", "max": "float64"})


def _kept_record(run) -> Mapping[str, Any]:
    kept = run.metrics.get("kept_epoch")
    if isinstance(kept, int) and not isinstance(kept, bool) and 1 <= kept <= len(run.history):
        return run.history[kept - 1]
    return {}


def _mean_std(values: Iterable[Any]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the finite values; NaN where there are too few."""
    finite = np.array([v for v in map(_number, values) if not math.isnan(v)])
    mean = float(finite.mean()) if finite.size else math.nan
    std = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
    return mean, std


def group_summary(groups: Sequence[SeedGroup]) -> pd.DataFrame:
    """One row per group: ``name, n, test_accuracy_mean, test_accuracy_std, val_accuracy_mean,
    val_accuracy_std, run_ids``.

    Validation accuracy is the kept epoch's. Runs without a value (a diverged run has no test
    accuracy) are left out of the statistics: NaN when no value is left; std (ddof=1) is NaN
    for a single value.
    """
    rows = []
    for group in groups:
        test_mean, test_std = _mean_std(run.metrics.get("test_accuracy") for run in group.runs)
        val_mean, val_std = _mean_std(_kept_record(run).get("val_accuracy") for run in group.runs)
        rows.append({"name": group.name, "n": group.n, "test_accuracy_mean": test_mean,
                     "test_accuracy_std": test_std, "val_accuracy_mean": val_mean, "val_accuracy_std": val_std,
                     "run_ids": group.run_ids})
    return pd.DataFrame(rows, columns=["name", "n", "test_accuracy_mean", "test_accuracy_std", "val_accuracy_mean",
                                       "val_accuracy_std", "run_ids"])


def mean_std_text(mean: float | None, std: float | None, digits: int = 4) -> str:
    """``0.9812 ± 0.0011``; ``0.9812`` without a std (NaN/None); ``—`` without a mean."""
    mean, std = _number(mean), _number(std)
    if math.isnan(mean):
        return "—"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# -- a y range that outliers cannot flatten ---------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RobustRange:
    """A y-axis range and the curves that leave it.

    ``lo`` and ``hi`` are in data units, also on a log axis. Plotly wants a log axis's range
    in log10 units: pass :meth:`plotly_range` as ``yaxis.range`` (it converts when ``log``).
    """

    lo: float
    hi: float
    above: tuple = ()  # keys with a value above hi
    below: tuple = ()  # keys with a value below lo
    log: bool = False  # computed for a log axis (lo > 0)

    @property
    def clipped(self) -> bool:
        return bool(self.above or self.below)

    def plotly_range(self, log: bool | None = None) -> list[float]:
        """``[lo, hi]`` for a linear axis, ``[log10(lo), log10(hi)]`` for a log axis (default: ``self.log``)."""
        log = self.log if log is None else log
        if not log:
            return [self.lo, self.hi]
        if self.lo <= 0:
            raise ValueError(f"a log axis needs a range above 0, got lo={self.lo!r}; compute it with log=True")
        return [math.log10(self.lo), math.log10(self.hi)]

    def note(self, noun: str = "run") -> str:
        """``1 run above the range``, ``2 runs above and 1 below the range``; "" when nothing is cut."""
        def count(n: int) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        if self.above and self.below:
            return f"{count(len(self.above))} above and {len(self.below)} below the range"
        if self.above:
            return f"{count(len(self.above))} above the range"
        if self.below:
            return f"{count(len(self.below))} below the range"
        return ""


def _finite(values: Any, log: bool) -> np.ndarray:
    array = np.array([_number(v) for v in np.ravel(np.asarray(values if values is not None else [], dtype=object))],
                     dtype=np.float64)
    array = array[np.isfinite(array)]
    if log:
        array = array[array > 0]
        array = np.log10(array)
    return array


def robust_range(series: Mapping[Any, Any], *, log: bool = False, low: float = 10.0, high: float = 90.0,
                 reach: float = 10.0) -> RobustRange:
    """A y range for the curves in ``series`` (key -> the y values drawn) that a wild value cannot flatten.

    Algorithm (in log10 space when ``log``, where values <= 0 are ignored, as a log axis drops
    them; None/NaN/inf are ignored):

    1. Pool every finite value. The *core* is the [``low``, ``high``] percentile range of the
       pool (10th to 90th: robust to a tenth of the points being wild; a diverged run stops
       at its first non-finite loss, so it adds only a few wild points). Its width ``w`` is
       taken to be at least 2 % of the core's magnitude on a linear axis (and at least 1e-6),
       so that tight plateaus do not make every early epoch look wild.
    2. The *fences* are the core widened by ``reach`` (10) times ``w`` on each side. A value
       beyond a fence is wild: a val loss of 7,206 beside curves of 0.02-0.5 is thousands of
       core widths out; a slow first epoch (accuracy 0.85, or 0.85 beside runs that all start
       at 0.975 and settle at 0.98-0.99) is within reach, as is anything within 20 % of the
       core's magnitude; a run stuck at chance (0.1 beside 0.98) is not.
    3. The range is the smallest and largest value within the fences, plus a 5 % margin each
       side: with nothing wild, the data range. The keys with a value outside it are
       ``above`` / ``below``.

    One rule for any number of keys: with one or two curves it is their data range unless a
    value is more than 10 core widths out; with fewer than about 11 values the percentiles
    cannot leave a single value out, so nothing is cut. With no finite value the range is
    (0, 1), or (0.1, 1) on a log axis.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"low and high must be percentiles with 0 <= low < high <= 100, got {low!r} and {high!r}")
    if not (isinstance(reach, (int, float)) and math.isfinite(reach) and reach >= 0):
        raise ValueError(f"reach must be a finite number >= 0, got {reach!r}")
    values = {key: _finite(ys, log) for key, ys in series.items()}
    pool = np.concatenate([v for v in values.values()]) if values else np.empty(0)
    if pool.size == 0:
        return RobustRange(0.1, 1.0, log=True) if log else RobustRange(0.0, 1.0)
    core_lo, core_hi = np.percentile(pool, [low, high])
    width = max(float(core_hi - core_lo), 0.0 if log else _RELATIVE * max(abs(core_lo), abs(core_hi)), 1e-6)
    fence_lo, fence_hi = core_lo - reach * width, core_hi + reach * width
    kept = pool[(pool >= fence_lo) & (pool <= fence_hi)]
    lo, hi = float(kept.min()), float(kept.max())
    span = hi - lo
    margin = 0.05 * span if span > 0 else max(abs(lo) * 0.05, 0.05 if log else 1e-6)
    lo, hi = lo - margin, hi + margin
    above = tuple(key for key, v in values.items() if v.size and v.max() > hi)
    below = tuple(key for key, v in values.items() if v.size and v.min() < lo)
    if log:
        return RobustRange(10.0 ** lo, 10.0 ** hi, above, below, log=True)
    return RobustRange(lo, hi, above, below)


# -- which hyperparameters matter ---------------------------------------------------------------
def _missing_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} must be columns of the runs table ({', '.join(map(str, frame.columns))}), "
                         f"got {missing}")


def _distinct(column: pd.Series) -> int:
    missing = column.isna()
    return int(column[~missing].nunique()) + int(bool(missing.any()))


def varying_parameters(frame: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """Of ``fields`` (columns of a runs table, one row per run), those with more than one distinct
    value, in the given order. None/NaN counts as a value of its own."""
    fields = list(fields)
    _missing_columns(frame, fields, "fields")
    return [field for field in fields if _distinct(frame[field]) > 1]


@dataclasses.dataclass(frozen=True)
class Importance:
    """Cross-validated permutation importance of hyperparameters for one target."""

    fields: tuple[str, ...]
    values: tuple[float, ...]  # mean decrease in R² when the field is shuffled
    stds: tuple[float, ...]  # std of that decrease over folds and repeats
    r2: float  # R² of the out-of-fold predictions
    n_runs: int
    folds: int
    target: str = "val_accuracy"
    repeats: int = 5

    def as_frame(self) -> pd.DataFrame:
        """``field, importance, std``, most important first."""
        frame = pd.DataFrame({"field": self.fields, "importance": self.values, "std": self.stds})
        return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)

    def caption(self) -> str:
        """How the numbers were computed, and that they are an estimate."""
        target = {"val_accuracy": "validation accuracy", "test_accuracy": "test accuracy",
                  "val_loss": "validation loss", "test_loss": "test loss"}.get(self.target, self.target)
        text = (f"Permutation importance of each hyperparameter for {target}: a random forest fitted on "
                f"{self.folds} folds of {self.n_runs} runs, each field shuffled {self.repeats} times on the "
                f"held-out fold; cross-validated R² {self.r2:.2f}. An estimate from these runs, not a law: fields "
                "that never vary cannot show up, and correlated fields share credit.")
        if not self.r2 >= 0.3:
            text += " The forest predicts the held-out runs poorly, so these values say little."
        return text


def _encode(column: pd.Series, name: str) -> np.ndarray:
    """Numbers as floats (learning rate as log10), anything else as ordinal codes; None its own code."""
    missing = column.isna().to_numpy()
    numeric = pd.to_numeric(column, errors="coerce")
    is_number = not column.map(lambda v: isinstance(v, (bool, np.bool_))).any() and \
        bool(numeric.notna().to_numpy()[~missing].all())
    if is_number:
        x = numeric.to_numpy(dtype=np.float64)
        if name == "learning_rate" and (x[~missing] > 0).all():
            x = np.log10(x, where=~missing, out=np.full_like(x, np.nan))
        if missing.any():  # below everything: trees can split it off on its own
            known = x[~missing]
            x = np.where(missing, (known.min() - (np.ptp(known) + 1.0)) if known.size else 0.0, x)
        return x
    labels = sorted({str(v) for v in column[~missing]})
    codes = {label: float(i) for i, label in enumerate(labels)}
    return np.array([-1.0 if m else codes[str(v)] for v, m in zip(column, missing)], dtype=np.float64)


def _permutation_scores(model, x: np.ndarray, y: np.ndarray, repeats: int, seed: int) -> np.ndarray:
    """The R² of ``model`` with each column shuffled ``repeats`` times: shape (columns, repeats).

    The same shuffles as ``sklearn.inspection.permutation_importance(random_state=seed)``
    (one seed drawn from ``seed``, a RandomState of it per column, the column re-shuffled in
    place each repeat), but predicted in one call over all shuffled copies, which is several
    times faster for a forest than one call per shuffle.
    """
    from sklearn.metrics import r2_score

    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    copies = []
    for j in range(x.shape[1]):
        state = np.random.RandomState(column_seed)
        shuffled = x.copy()
        order = np.arange(len(x))
        for _ in range(repeats):
            state.shuffle(order)
            shuffled[:, j] = shuffled[order, j]
            copies.append(shuffled.copy())
    predictions = model.predict(np.concatenate(copies)).reshape(x.shape[1] * repeats, len(x))
    return np.array([r2_score(y, p) for p in predictions]).reshape(x.shape[1], repeats)


def importance(frame: pd.DataFrame, fields: Sequence[str], target: str = "val_accuracy", *, min_runs: int = 12,
               folds: int = 5, seed: int = 0, repeats: int = 5) -> Importance | None:
    """Which of ``fields`` drive ``target``, by cross-validated permutation importance; None when it cannot say.

    None when fewer than ``min_runs`` rows have a finite target, or no field varies among
    them. Otherwise: fields encoded (categories as ordinal codes with None its own code,
    numbers as floats, learning rate as log10); for each of ``min(folds, n)`` shuffled KFold
    folds, a ``RandomForestRegressor(n_estimators=100, min_samples_leaf=2)`` is fitted on the
    other folds and each varying field is shuffled ``repeats`` times on the held-out fold
    (permutation importance, scoring R²); the importances are averaged over folds. ``r2`` is
    the R² of the out-of-fold predictions. Single-threaded, deterministic for a ``seed``.
    """
    fields = list(fields)
    _missing_columns(frame, fields, "fields")
    _missing_columns(frame, [target], "target")
    for name, value, least in (("min_runs", min_runs, 2), ("folds", folds, 2), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64)
    rows = frame.loc[np.isfinite(y)]
    y = y[np.isfinite(y)]
    if len(rows) < min_runs:
        return None
    varying = varying_parameters(rows, fields)
    if not varying:
        return None

    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    x = np.column_stack([_encode(rows[field], field) for field in varying])
    n_folds = min(folds, len(rows))
    out_of_fold = np.empty_like(y)
    drops = []  # per fold: (fields, repeats) decrease in R²
    for train, test in KFold(n_folds, shuffle=True, random_state=seed).split(x):
        model = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
        model.fit(x[train], y[train])
        out_of_fold[test] = model.predict(x[test])
        baseline = r2_score(y[test], out_of_fold[test])
        drops.append(baseline - _permutation_scores(model, x[test], y[test], repeats, seed))
    drops = np.stack(drops)  # (folds, fields, repeats)
    values = drops.mean(axis=(0, 2))
    stds = drops.transpose(1, 0, 2).reshape(len(varying), -1).std(axis=1)
    return Importance(tuple(varying), tuple(map(float, values)), tuple(map(float, stds)),
                      float(r2_score(y, out_of_fold)), len(rows), n_folds, target, repeats)


# -- short run ids ----------------------------------------------------------------------------------
_PREFIX = re.compile(r"[0-9a-f]{4,16}")


def unique_prefixes(run_ids: Iterable[str], universe: Iterable[str], *, min_len: int = 4) -> dict[str, str]:
    """For each of ``run_ids``, its shortest prefix (at least ``min_len`` characters) that starts no
    other id of ``universe`` (which is taken to include ``run_ids``); the whole id when none does."""
    if isinstance(min_len, bool) or not isinstance(min_len, int) or min_len < 1:
        raise ValueError(f"min_len must be an integer >= 1, got {min_len!r}")
    run_ids = list(run_ids)
    ordered = sorted(set(universe) | set(run_ids))
    where = {run_id: i for i, run_id in enumerate(ordered)}

    def common(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    prefixes = {}
    for run_id in run_ids:
        i = where[run_id]
        shared = max([common(run_id, ordered[j]) for j in (i - 1, i + 1) if 0 <= j < len(ordered)], default=0)
        prefixes[run_id] = run_id[:max(min_len, shared + 1)]
    return prefixes
