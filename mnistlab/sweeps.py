"""Sweeps: a grid of configurations as data, expanded, planned and followed. Pure logic, no I/O.

A sweep is a name, one or more *grids* and the data source. A grid maps configuration
fields (the :data:`~mnistlab.runs.config.FIELDS` table) to the values to try; any field may
take a list, ``seeds=5`` means seeds 0..4, and a single value is a fixed value::

    sweep = make_sweep({"arch": ["mlp", "cnn"], "optimizer": "sgd,adam", "epochs": 5}, seeds=3)
    configs = expand(sweep)          # 2 x 2 x 3 = 12 RunConfigs, in a stable order

Every value is checked by the table, so a bad grid gets RunConfig's own message
(``batch_size must be an integer in [1, 60000], got 0``); a grid that expands to more than
``max_runs`` configurations (default :data:`MAX_RUNS`) is refused with a message that says
how to raise the limit. Expansion follows the table's field order with the values in the
order given (seeds vary fastest) and drops repeated configurations.

What needs the store or the data (run ids, which runs are stored, timings of stored runs)
is handed in by :mod:`mnistlab.sweeps_exec`, which also runs sweeps (joblib locally, Dask
on a cluster); this module only computes: :func:`make_plan` (stored / to train, estimated
time), :func:`progress` ("17 of 40 done, 2 training, ETA 6 min") and the recipes table
(:data:`RECIPES`, :func:`recipe_rows`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import statistics
from typing import Any, Iterable, Mapping, Sequence

from mnistlab.errors import ConfigError
from mnistlab.runs.config import DEFAULT_LEARNING_RATES, FIELDS, MAX_SEED, Field, RunConfig, arch_field

#: The most configurations one sweep may expand to, unless raised (``max_runs``, ``--max-runs``).
MAX_RUNS = 500
#: The most seeds ``seeds=N`` may ask for.
MAX_SEEDS = 1000
#: Fields a grid may vary: every field of the table.
SWEEP_FIELDS = tuple(FIELDS)
#: Attempt states that end a run without a result (a sweep can retry them).
UNFINISHED = ("cancelled", "failed", "interrupted")


def _field(name: str) -> Field:
    return arch_field() if name == "arch" else FIELDS[name]


@dataclasses.dataclass(frozen=True)
class Grid:
    """Fields and the values each takes, in the table's order (values checked, repeats dropped)."""

    values: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def size(self) -> int:
        return math.prod(len(values) for _, values in self.values)

    def as_dict(self) -> dict[str, list[Any]]:
        return {name: list(values) for name, values in self.values}


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep: its name, its grids (their union is the sweep) and the data source."""

    name: str
    grids: tuple[Grid, ...]
    data: str = "auto"
    max_runs: int = MAX_RUNS

    @property
    def size(self) -> int:
        """How many configurations the grids name (before repeated ones are dropped)."""
        return sum(grid.size for grid in self.grids)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "grids": [grid.as_dict() for grid in self.grids], "data": self.data}


def split_list(text: str) -> list[str]:
    """``"mlp, cnn"`` -> ``["mlp", "cnn"]`` (what the CLI and the app's list inputs give)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _as_values(name: str, raw: Any) -> list[Any]:
    """A grid entry as a list: a list or tuple as is, ``"a,b"`` split, ``"none"`` as unset."""
    if isinstance(raw, (list, tuple)):
        items = list(raw)
    elif isinstance(raw, str) and "," in raw:
        items = split_list(raw)
    else:
        items = [raw]
    field = _field(name)
    out = []
    for item in items:
        if isinstance(item, str) and item.strip().lower() in ("none", "") and field.unset:
            out.append(None)
        elif isinstance(item, str) and field.kind != "choice":
            text = item.strip()
            try:
                out.append(int(text))
            except ValueError:
                try:
                    out.append(float(text))
                except ValueError:
                    out.append(text)  # the table's check names it
        else:
            out.append(item)
    return out


def make_grid(values: Mapping[str, Any], *, seeds: int | None = None) -> Grid:
    """A grid from ``{field: value or list of values}``; ``seeds=N``: seeds 0..N-1.

    Raises :class:`ConfigError` naming the field, the allowed values and what was given.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"a sweep grid must be a mapping of field -> values, got {type(values).__name__}")
    unknown = [name for name in values if name not in SWEEP_FIELDS]
    if unknown:
        raise ConfigError(f"unknown sweep field(s) {sorted(map(str, unknown))}; allowed: {list(SWEEP_FIELDS)}")
    given = dict(values)
    if seeds is not None:
        if "seed" in given:
            raise ConfigError("give seed (a list of seeds) or seeds (how many, 0..N-1), not both")
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= min(MAX_SEEDS, MAX_SEED):
            raise ConfigError(f"seeds must be an integer in [1, {MAX_SEEDS}] (seeds 0..N-1), got {seeds!r}")
        given["seed"] = list(range(seeds))
    checked = []
    for name in SWEEP_FIELDS:
        if name not in given:
            continue
        items = _as_values(name, given[name])
        field = _field(name)
        if not items:
            raise ConfigError(f"{name} must be a non-empty list of values, each {field.allowed}, got {given[name]!r}")
        if name == "validation_size":  # checked per validation scheme by RunConfig when expanded
            kept = [None if item is None else _size(item) for item in items]
        else:
            kept = [field.check(item) for item in items]
        checked.append((name, tuple(dict.fromkeys(kept))))  # repeats dropped, order kept
    return Grid(tuple(checked))


def _size(item: Any) -> Any:
    return FIELDS["validation_size"].check(item)


def default_name(grids: Sequence[Grid], data: str) -> str:
    """A stable name for a sweep without one: ``sweep-`` and a short hash of what it names."""
    text = json.dumps([grid.as_dict() for grid in grids] + [data], sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80 or any(
            ord(c) < 32 for c in name):
        raise ConfigError(f"the sweep name must be 1 to 80 printable characters, got {str(name)[:90]!r}")
    return name.strip()


def make_sweep(grid: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, seeds: int | None = None,
               data: str = "auto", name: str | None = None, max_runs: int = MAX_RUNS) -> Sweep:
    """A validated sweep: one grid (a mapping) or the union of several (a list of mappings).

    ``seeds`` applies to every grid. Raises :class:`ConfigError` for a bad field or value, or
    when the sweep names more than ``max_runs`` configurations.
    """
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ConfigError(f"max_runs must be an integer >= 1, got {max_runs!r}")
    mappings = [grid] if isinstance(grid, Mapping) else list(grid)
    if not mappings:
        raise ConfigError("a sweep needs at least one grid")
    grids = tuple(make_grid(values, seeds=seeds) for values in mappings)
    RunConfig(data=data)  # the data value checked as RunConfig does
    sweep = Sweep(check_name(name) if name is not None else default_name(grids, data), grids, data, max_runs)
    if sweep.size > max_runs:
        raise ConfigError(f"the sweep expands to {sweep.size:,} runs, more than the limit of {max_runs:,}: narrow "
                          f"the grid, or raise the limit (--max-runs {sweep.size} on the command line, "
                          f"max_runs={sweep.size} in Python)")
    return sweep


def expand(sweep: Sweep) -> list[RunConfig]:
    """The sweep's configurations in a stable order, each checked by RunConfig, repeats dropped.

    A learning rate equal to its optimizer's default is written as unset (the same training).
    """
    configs: dict[RunConfig, None] = {}
    for grid in sweep.grids:
        names = [name for name, _ in grid.values]
        for combo in itertools.product(*(values for _, values in grid.values)):
            values = dict(zip(names, combo))
            if values.get("learning_rate") is not None and values["learning_rate"] == DEFAULT_LEARNING_RATES[
                    values.get("optimizer", FIELDS["optimizer"].default)]:
                values["learning_rate"] = None
            try:
                config = RunConfig(**values, data=sweep.data)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v!r}" for k, v in values.items() if len(grid.as_dict()[k]) > 1)
                raise ConfigError(f"{exc} (in the combination {shown or 'of the fixed values'})") from None
            configs.setdefault(config, None)
    return list(configs)


# -- plans -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sample:
    """What a stored run tells about speed: seconds to fit ``epochs`` epochs of ``fit_images``."""

    arch: str
    batch_size: int
    fit_images: int
    epochs: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One configuration of a sweep, resolved: its run id, whether it is stored, what it fits on."""

    config: RunConfig
    run_id: str
    stored: bool
    fit_images: int
    seconds: float | None = None  # estimated training time (None: no stored run to estimate from)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a sweep will do: its runs (unique run ids, in sweep order), an estimate, notes."""

    name: str
    runs: tuple[PlannedRun, ...]
    repeated: int  # configurations that are the same training as an earlier one (same run id)
    estimate_seconds: float | None  # wall time for the runs to train (None: nothing to estimate from)
    unestimated: int  # runs to train with no stored run of their architecture
    parallel: int  # how many train at once
    notes: tuple[str, ...] = ()

    @property
    def stored(self) -> list[PlannedRun]:
        return [run for run in self.runs if run.stored]

    @property
    def to_train(self) -> list[PlannedRun]:
        return [run for run in self.runs if not run.stored]

    def summary(self) -> str:
        """``40 runs: 12 stored, 28 to train; about 14 min with 2 at a time``."""
        text = f"{len(self.runs)} run{'' if len(self.runs) == 1 else 's'}: {len(self.stored)} stored, {len(self.to_train)} to train"
        if self.to_train:
            if self.estimate_seconds is not None:
                text += f"; about {duration(self.estimate_seconds)} with {self.parallel} at a time"
                if self.unestimated:
                    text += f" (plus {self.unestimated} run{'' if self.unestimated == 1 else 's'} of architectures with no stored run to time)"
            else:
                text += "; no estimate yet (no stored run of these architectures to time)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "runs": len(self.runs), "stored": len(self.stored),
                "to_train": len(self.to_train), "repeated": self.repeated,
                "estimate_seconds": self.estimate_seconds, "parallel": self.parallel, "notes": list(self.notes),
                "configs": [{"run_id": r.run_id, "label": r.config.label(), "stored": r.stored,
                             "config": r.config.to_dict()} for r in self.runs]}


def duration(seconds: float) -> str:
    """``45 s``, ``6 min``, ``1 h 20 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def seconds_per_image_epoch(samples: Iterable[Sample]) -> dict[tuple[str, int | None], float]:
    """Speed of stored runs: median seconds per training image and epoch, by (arch, batch size) and arch."""
    groups: dict[tuple[str, int | None], list[float]] = {}
    for s in samples:
        if s.fit_images > 0 and s.epochs > 0 and s.seconds > 0:
            rate = s.seconds / (s.fit_images * s.epochs)
            groups.setdefault((s.arch, s.batch_size), []).append(rate)
            groups.setdefault((s.arch, None), []).append(rate)
    return {key: statistics.median(rates) for key, rates in groups.items()}


def estimate(config: RunConfig, fit_images: int, rates: Mapping[tuple[str, int | None], float]) -> float | None:
    """Seconds to train ``config`` (all its epochs), from stored runs of its architecture; None without."""
    rate = rates.get((config.arch, config.batch_size), rates.get((config.arch, None)))
    return None if rate is None else rate * fit_images * config.epochs


def make_plan(name: str, items: Iterable[tuple[RunConfig, str, bool, int]], samples: Iterable[Sample] = (),
              *, jobs: int = 1, cap: int | None = None) -> Plan:
    """A sweep's plan from ``(config, run_id, stored, fit_images)`` per configuration.

    ``samples``: stored runs' timings (estimates use runs of the same architecture, and of the
    same batch size where there are some). ``jobs``: processes asked for; ``cap``: how many
    runs may train at once on this machine (``MNISTLAB_MAX_TRAININGS``), None for no limit.
    """
    rates = seconds_per_image_epoch(samples)
    runs: dict[str, PlannedRun] = {}
    repeated = 0
    for config, run_id, stored, fit_images in items:
        if run_id in runs:
            repeated += 1
            continue
        runs[run_id] = PlannedRun(config, run_id, bool(stored), int(fit_images),
                                  None if stored else estimate(config, fit_images, rates))
    parallel = max(1, min(jobs, cap) if cap is not None else jobs)
    notes = []
    if cap is not None and jobs > cap:
        notes.append(f"--jobs {jobs} asks for {jobs} trainings at once, but MNISTLAB_MAX_TRAININGS allows {cap}: "
                     f"only {cap} will train at a time; set MNISTLAB_MAX_TRAININGS={jobs} to use all {jobs}")
    todo = [run for run in runs.values() if not run.stored]
    timed = [run.seconds for run in todo if run.seconds is not None]
    total = sum(timed) / parallel if timed else None
    return Plan(name, tuple(runs.values()), repeated, total, len(todo) - len(timed), parallel, tuple(notes))


# -- progress --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SweepProgress:
    """How far a sweep is: counts of its runs and an estimated time left."""

    name: str
    total: int
    done: int  # stored (finished or diverged)
    training: int
    queued: int
    unfinished: int  # cancelled, failed or interrupted, not stored: what "retry" trains again
    waiting: int  # neither stored nor with any attempt yet (e.g. a Dask sweep not yet dispatched)
    eta_seconds: float | None

    @property
    def active(self) -> bool:
        return bool(self.training or self.queued)

    def text(self) -> str:
        """``17 of 40 done, 2 training, 3 queued, 1 failed, ETA 6 min``."""
        parts = [f"{self.done} of {self.total} done"]
        if self.training:
            parts.append(f"{self.training} training")
        if self.queued:
            parts.append(f"{self.queued} queued")
        if self.unfinished:
            parts.append(f"{self.unfinished} failed or cancelled")
        if self.eta_seconds is not None and self.active:
            parts.append(f"ETA {duration(self.eta_seconds)}")
        return ", ".join(parts)


def progress(name: str, run_ids: Sequence[str], stored: set[str], attempts: Mapping[str, Any],
             epoch_seconds: Iterable[float] = ()) -> SweepProgress:
    """A sweep's progress from its run ids, the stored ones and the newest attempt of each run.

    ``attempts``: run id -> an object with ``state``, ``epochs_total`` and ``history`` (a live
    :class:`~mnistlab.runs.live.Attempt`). ``epoch_seconds``: seconds of epochs already trained
    by the sweep's runs, to time the rest (together with the histories of training runs).
    """
    done = training = queued = unfinished = waiting = 0
    seconds = list(epoch_seconds)
    epochs_left = 0
    for run_id in dict.fromkeys(run_ids):
        attempt = attempts.get(run_id)
        if run_id in stored:
            done += 1
            continue
        if attempt is None:
            waiting += 1
            continue
        if attempt.state == "training":
            training += 1
            seconds += [record.get("seconds", 0.0) for record in attempt.history]
            epochs_left += max(0, attempt.epochs_total - len(attempt.history))
        elif attempt.state == "queued":
            queued += 1
            epochs_left += attempt.epochs_total
        elif attempt.state in ("finished", "diverged"):
            done += 1  # stored meanwhile, or imported from a Dask worker
        else:
            unfinished += 1
    per_epoch = statistics.mean(seconds) if seconds else None
    eta = None if per_epoch is None else per_epoch * epochs_left / max(1, training)
    total = len(dict.fromkeys(run_ids))
    return SweepProgress(name, total, done, training, queued, unfinished, waiting, eta)


# -- the published recipes -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Recipe:
    """A published recipe: its configuration (without seed) and its published test accuracy (%)."""

    key: str
    title: str
    published: float
    values: tuple[tuple[str, Any], ...]

    def config(self, *, data: str = "auto", seed: int = 0, **changes: Any) -> RunConfig:
        return RunConfig(**{**dict(self.values), **changes}, seed=seed, data=data)


_KERAS = (("epochs", 30), ("batch_size", 32), ("optimizer", "sgd"), ("validation", "holdout"))
_CH16 = (("task", "digits"), ("epochs", 30), ("batch_size", 200), ("optimizer", "adam"), ("validation", "fraction"),
         ("validation_size", 0.25), ("patience", 10))
#: The eight published recipe configurations, with their published test accuracy in percent:
#: the Keras MNIST recipe's three models on digits and on parity (SGD, batch 32, hold-out
#: 50,000/10,000, 30 epochs), and chapter 16's mlp_512 and cnn_dropout (Adam, batch 200,
#: validation fraction 0.25, early stopping with patience 10, 30 epochs).
RECIPES: tuple[Recipe, ...] = (
    Recipe("digits/mlp", "Keras recipe, digits, mlp", 97.68, (("task", "digits"), ("arch", "mlp"), *_KERAS)),
    Recipe("digits/cnn", "Keras recipe, digits, cnn", 98.76, (("task", "digits"), ("arch", "cnn"), *_KERAS)),
    Recipe("digits/deep_cnn", "Keras recipe, digits, deep_cnn", 99.18,
           (("task", "digits"), ("arch", "deep_cnn"), *_KERAS)),
    Recipe("parity/mlp", "Keras recipe, parity, mlp", 98.66, (("task", "parity"), ("arch", "mlp"), *_KERAS)),
    Recipe("parity/cnn", "Keras recipe, parity, cnn", 98.82, (("task", "parity"), ("arch", "cnn"), *_KERAS)),
    Recipe("parity/deep_cnn", "Keras recipe, parity, deep_cnn", 99.62,
           (("task", "parity"), ("arch", "deep_cnn"), *_KERAS)),
    Recipe("ch16/mlp_512", "Chapter 16, mlp_512", 98.11, (("arch", "mlp_512"), *_CH16)),
    Recipe("ch16/cnn_dropout", "Chapter 16, cnn_dropout", 99.13, (("arch", "cnn_dropout"), *_CH16)),
)
RECIPES_NAME = "recipes"
FULL_DATA_NOTE = ("The published numbers are for full MNIST (60,000 training images); this data source is "
                  "the shipped 5,000-digit sample, so its runs are not comparable to them.")


def recipes_sweep(*, seeds: int = 1, data: str = "auto", name: str = RECIPES_NAME, **changes: Any) -> Sweep:
    """The built-in sweep ``recipes``: the eight recipe configurations, ``seeds`` seeds each.

    ``changes`` (e.g. ``epochs=1, train_size=2000``) override fields of every recipe: for a
    quick check; such runs are not the published configurations.
    """
    grids = [{**dict(recipe.values), **changes} for recipe in RECIPES]
    return make_sweep(grids, seeds=seeds, data=data, name=name)


def recipe_rows(accuracies: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
    """The recipes table: published test accuracy beside the stored runs' mean ± std over seeds.

    ``accuracies``: recipe key -> test accuracies (0..1) of the stored runs of that recipe (one
    per seed). Percentages; ``diff_pp`` is ours minus published in percentage points.
    """
    rows = []
    for recipe in RECIPES:
        values = [100.0 * a for a in accuracies.get(recipe.key, ()) if a is not None]
        mean = statistics.mean(values) if values else None
        rows.append({
            "recipe": recipe.key,
            "title": recipe.title,
            "published": recipe.published,
            "mean": mean,
            "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            "n": len(values),
            "diff_pp": None if mean is None else mean - recipe.published,
        })
    return rows


def recipe_line(row: Mapping[str, Any]) -> str:
    """``digits/cnn  98.71 ± 0.05 (n=3)  vs 98.76 published  -0.05 pp`` (or ``not trained yet``)."""
    if not row["n"]:
        return f"{row['recipe']:18} {'not trained yet':>22}  vs {row['published']:.2f} published"
    return (f"{row['recipe']:18} {row['mean']:6.2f} ± {row['std']:.2f} (n={row['n']})  vs {row['published']:.2f} "
            f"published  {row['diff_pp']:+.2f} pp")
