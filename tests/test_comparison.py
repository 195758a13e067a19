"""Comparing many runs: legend names, seed groups, mean curves, robust ranges, importance, short ids.

Runs here are small stand-ins with the attributes the module reads (run_id, config,
canonical, history, metrics), built from real resolved configurations: fast, no training.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from mnistlab.analysis.comparison import (
    RobustRange,
    differing_fields,
    full_name,
    group_curve,
    group_summary,
    importance,
    mean_std_text,
    robust_range,
    seed_groups,
    shared_caption,
    short_names,
    unique_prefixes,
    varying_parameters,
)
from mnistlab.runs.config import RunConfig, canonical_json, id_of

FULL_MNIST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@dataclasses.dataclass
class FakeRun:
    run_id: str
    config: RunConfig
    canonical: dict
    history: list
    metrics: dict


def make_run(*, data: str = FULL_MNIST, extra: dict | None = None, history: list | None = None,
             metrics: dict | None = None, run_id: str | None = None, **config) -> FakeRun:
    """A run of ``config`` resolved against full MNIST (60,000 training images), as the store keeps it."""
    cfg = RunConfig(**config)
    canonical = {**cfg.resolved(60_000).canonical(data), **(extra or {})}
    history = history if history is not None else [
        {"epoch": e, "elapsed": 2.0 * e, "loss": 0.5 / e, "accuracy": 0.9 + e / 100, "val_loss": 0.6 / e,
         "val_accuracy": 0.88 + e / 100} for e in (1, 2, 3)]
    metrics = metrics if metrics is not None else {"test_accuracy": 0.95, "kept_epoch": len(history),
                                                   "status": "finished"}
    return FakeRun(run_id or id_of(canonical_json(canonical)), cfg, canonical, history, metrics)


# -- names ---------------------------------------------------------------------------------------
def test_legend_names_list_only_the_fields_that_differ():
    a = make_run(arch="cnn", optimizer="adam")
    b = make_run(arch="mlp", optimizer="sgd")
    # the resolved learning rates differ too (Keras defaults), but the optimizer already says so
    assert differing_fields([a, b]) == ["arch", "optimizer", "learning_rate"]
    assert short_names([a, b]) == {a.run_id: "cnn · adam", b.run_id: "mlp · sgd"}


def test_legend_names_use_the_label_style_for_every_field():
    a = make_run(arch="cnn", optimizer="adam", learning_rate=0.005, batch_size=128, epochs=3, seed=3)
    b = make_run(arch="mlp", optimizer="sgd", batch_size=32, epochs=30, seed=0)
    assert short_names([a, b]) == {a.run_id: "cnn · adam · lr0.005 · bs128 · 3ep · seed3",
                                   b.run_id: "mlp · sgd · bs32 · 30ep · seed0"}  # sgd's default rate
    c = make_run(task="parity", validation="fraction", patience=3, train_size=5000)
    d = make_run(task="digits")
    # a scheme's default validation size goes without saying next to the scheme
    assert short_names([c, d]) == {c.run_id: "parity · n5000 · val=fraction · es3",
                                   d.run_id: "digits · n50000 · val=holdout · no es"}
    assert short_names([c, d], without=("train_size", "patience"))[c.run_id] == "parity · val=fraction"
    e = make_run(validation="fraction", validation_size=0.2, train_size=5000)
    f = make_run(validation="fraction", train_size=5000)
    assert short_names([e, f]) == {e.run_id: "val0.2", f.run_id: "val0.25"}


def test_unset_and_explicit_defaults_are_not_differences():
    unset = make_run(optimizer="adam")
    explicit = make_run(optimizer="adam", learning_rate=0.001, validation_size=10_000, train_size=50_000)
    other_seed = make_run(optimizer="adam", seed=7)
    assert unset.run_id == explicit.run_id
    assert differing_fields([unset, explicit]) == []
    assert differing_fields([unset, explicit, other_seed]) == ["seed"]


def test_runs_that_share_everything_are_named_by_arch_and_told_apart_by_id():
    a = make_run(arch="mlp", run_id="abcd1234" + "0" * 8)
    b = make_run(arch="mlp", run_id="abcd9876" + "0" * 8)
    assert short_names([a, b]) == {a.run_id: "mlp · abcd1", b.run_id: "mlp · abcd9"}
    s0, s1 = make_run(seed=0), make_run(seed=1)
    names = short_names([s0, s1], without=("seed",))
    prefixes = unique_prefixes([s0.run_id, s1.run_id], [s0.run_id, s1.run_id])
    assert names == {s0.run_id: f"cnn · {prefixes[s0.run_id]}", s1.run_id: f"cnn · {prefixes[s1.run_id]}"}
    assert short_names([s0]) == {s0.run_id: "cnn"}


def test_short_names_reject_an_unknown_field_to_leave_out():
    with pytest.raises(ValueError, match="without must name configuration fields"):
        short_names([make_run(), make_run(seed=1)], without=("colour",))


def test_data_and_later_fields_are_differences_after_the_table_fields():
    base = make_run()
    other_data = make_run(data="1a2b3c" + "f" * 58)
    half = make_run(extra={"precision": "bfloat16"})
    assert differing_fields([base, other_data, half]) == ["precision", "data"]
    names = short_names([base, other_data])
    assert names == {base.run_id: "data 9f86d0", other_data.run_id: "data 1a2b3c"}
    assert short_names([base, half])[half.run_id] == "bf16"


def test_shared_caption_lists_the_fields_all_runs_share():
    runs = [make_run(arch=arch, seed=0) for arch in ("mlp", "cnn", "deep_cnn")] * 4
    runs = [dataclasses.replace(run, run_id=f"{i:016x}") for i, run in enumerate(runs)]
    assert shared_caption(runs) == ("All 12 runs: digits · sgd · batch 32 · 30 epochs · hold-out 10,000 · "
                                    "fit 50,000 images · seed 0")
    one = shared_caption([make_run(optimizer="adam", learning_rate=0.01, patience=3)])
    assert one == ("1 run: digits · cnn · adam · learning rate 0.01 · batch 32 · 30 epochs · hold-out 10,000 · "
                   "fit 50,000 images · early stopping after 3 · seed 0")
    two = shared_caption([make_run(seed=1), make_run(seed=2, validation="fraction")])
    assert two.startswith("Both runs: digits · cnn · sgd · batch 32 · 30 epochs") and "seed" not in two


def test_full_name_is_the_label_and_an_id_prefix():
    run = make_run(arch="mlp", optimizer="adam")
    assert full_name(run) == f"mlp · digits · adam · bs32 · 30ep · {run.run_id[:6]}"


# -- seed groups -------------------------------------------------------------------------------------
def test_seed_groups_gather_runs_that_differ_only_in_seed():
    sgd = [make_run(seed=s) for s in (0, 1, 2)]
    adam = [make_run(optimizer="adam", seed=s) for s in (0, 1)]
    groups = seed_groups([sgd[0], adam[0], sgd[1], adam[1], sgd[2], sgd[2]])
    assert [g.name for g in groups] == ["sgd (n=3)", "adam (n=2)"]
    assert [g.n for g in groups] == [3, 2]
    assert groups[0].run_ids == tuple(r.run_id for r in sgd)
    assert groups[0].key != groups[1].key and len(groups[0].key) == 16


def test_seed_groups_keep_other_data_and_other_precision_apart():
    plain = [make_run(seed=s) for s in (0, 1)]
    other_data = [make_run(seed=s, data="1a2b3c" + "0" * 58) for s in (0, 1)]
    half = [make_run(seed=s, extra={"precision": "bfloat16"}) for s in (0, 1, 2)]
    groups = seed_groups(plain + other_data + half)
    assert [g.n for g in groups] == [2, 2, 3]
    assert [set(g.run_ids) for g in groups] == [{r.run_id for r in rs} for rs in (plain, other_data, half)]
    assert groups[1].name == "f32 · data 1a2b3c (n=2)"
    assert groups[2].name == "bf16 · data 9f86d0 (n=3)"


def _history(values: list, metric: str = "val_loss") -> list[dict]:
    return [{"epoch": e, "elapsed": 10.0 * e + len(values), "loss": None, "accuracy": None, "val_loss": None,
             "val_accuracy": None, metric: v} for e, v in enumerate(values, start=1)]


def test_group_curve_mean_and_std_equal_numpy_over_runs_of_unequal_length():
    runs = [make_run(seed=0, history=_history([0.5, 0.3, 0.2])),
            make_run(seed=1, history=_history([0.6, 0.4])),  # stopped early
            make_run(seed=2, history=_history([0.55, None, 0.25, 0.1]))]
    curve = group_curve(runs, "val_loss")
    assert list(curve.columns) == ["epoch", "x", "mean", "std", "min", "max", "n"]
    assert curve["epoch"].tolist() == [1, 2, 3, 4] and curve["n"].tolist() == [3, 2, 2, 1]
    by_epoch = {1: [0.5, 0.6, 0.55], 2: [0.3, 0.4], 3: [0.2, 0.25], 4: [0.1]}
    for row in curve.itertuples():
        values = by_epoch[row.epoch]
        assert row.mean == pytest.approx(np.mean(values))
        assert row.std == pytest.approx(np.std(values, ddof=1) if len(values) > 1 else 0.0)
        assert (row.min, row.max, row.x) == (min(values), max(values), row.epoch)
    elapsed = group_curve(runs, "val_loss", x="elapsed")
    # elapsed is 10 * epoch + the run's length: epoch 2 has the runs of length 3 and 2
    assert elapsed["x"].tolist() == pytest.approx([np.mean([13, 12, 14]), np.mean([23, 22]), np.mean([33, 34]), 44])


def test_group_curve_names_the_allowed_metrics_and_axes():
    with pytest.raises(ValueError, match="metric must be one of 'loss', 'accuracy', 'val_loss', 'val_accuracy'"):
        group_curve([make_run()], "acc")
    with pytest.raises(ValueError, match="x must be one of 'epoch', 'elapsed'"):
        group_curve([make_run()], "loss", x="time")
    assert group_curve([], "loss").empty


def test_group_summary_skips_diverged_runs_and_gives_nan_for_one_value():
    finished = [make_run(seed=s, history=_history([0.9, 0.95 + s / 100, 0.94], "val_accuracy"),
                         metrics={"test_accuracy": 0.96 + s / 1000, "kept_epoch": 2, "status": "finished"})
                for s in (0, 1, 2)]
    diverged = make_run(seed=3, history=_history([0.5], "val_accuracy"),
                        metrics={"test_accuracy": None, "kept_epoch": None, "status": "diverged"})
    lonely = make_run(optimizer="adam", metrics={"test_accuracy": 0.97, "kept_epoch": 3, "status": "finished"})
    table = group_summary(seed_groups([*finished, diverged, lonely]))
    assert list(table.columns) == ["name", "n", "test_accuracy_mean", "test_accuracy_std", "val_accuracy_mean",
                                   "val_accuracy_std", "run_ids"]
    first, second = table.iloc[0], table.iloc[1]
    assert first["n"] == 4 and len(first["run_ids"]) == 4
    assert first["test_accuracy_mean"] == pytest.approx(np.mean([0.960, 0.961, 0.962]))
    assert first["test_accuracy_std"] == pytest.approx(np.std([0.960, 0.961, 0.962], ddof=1))
    assert first["val_accuracy_mean"] == pytest.approx(np.mean([0.95, 0.96, 0.97]))
    assert second["test_accuracy_mean"] == 0.97 and math.isnan(second["test_accuracy_std"])
    assert mean_std_text(first["test_accuracy_mean"], first["test_accuracy_std"]) == "0.9610 ± 0.0010"
    assert mean_std_text(0.97, float("nan")) == "0.9700"
    assert mean_std_text(float("nan"), float("nan")) == "—"
    assert mean_std_text(0.97123, 0.001, digits=2) == "0.97 ± 0.00"


# -- robust range -----------------------------------------------------------------------------------
def _normal_val_loss(n_runs: int = 11, epochs: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"run{i}": np.maximum(0.02, (0.45 + 0.05 * rng.random()) * np.exp(-np.arange(epochs) / 4)
                                  + 0.02 * rng.random()) for i in range(n_runs)}


def test_robust_range_leaves_out_a_diverged_run_and_names_it():
    series = _normal_val_loss()
    series["diverged"] = np.array([0.5, 0.4, 0.45, 0.9, 3.0, 80.0, 7206.0, None], dtype=object)
    result = robust_range(series)
    normal = np.concatenate([v for k, v in series.items() if k != "diverged"])
    assert result.above == ("diverged",) and result.below == ()
    assert result.lo <= normal.min() and normal.max() <= result.hi < 10
    assert result.clipped and result.note() == "1 run above the range"
    assert robust_range({k: v for k, v in series.items() if k != "diverged"}).clipped is False


def test_robust_range_keeps_a_normal_spread_of_early_epochs():
    rng = np.random.default_rng(1)
    # every run starts lower (0.85-0.93) and settles at 0.97-0.99
    spread = {f"run{i}": np.r_[0.85 + 0.08 * rng.random(), 0.97 + 0.02 * rng.random(size=29)] for i in range(12)}
    result = robust_range(spread)
    assert not result.clipped
    assert result.lo < min(v.min() for v in spread.values()) and result.hi > 0.97
    # one slow starter (0.85) among runs that all start at 0.975 is still shown
    slow = {f"run{i}": np.r_[0.975, 0.98 + 0.01 * rng.random(size=29)] for i in range(11)}
    slow["slow"] = np.r_[0.85, 0.98 + 0.01 * rng.random(size=29)]
    result = robust_range(slow)
    assert not result.clipped and result.lo < 0.85
    # a run stuck at chance is not a spread of early epochs: it would squeeze the others into 2 %
    stuck = robust_range({**slow, "stuck": np.full(30, 0.1)})
    assert stuck.below == ("stuck",) and stuck.lo > 0.8 and stuck.note() == "1 run below the range"


def test_robust_range_is_the_data_range_for_one_or_two_curves_unless_a_value_is_wild():
    curve = 2.3 * np.exp(-np.arange(30) / 3) + 0.02
    one = robust_range({"a": curve})
    span = curve.max() - curve.min()
    assert one.lo == pytest.approx(curve.min() - 0.05 * span) and one.hi == pytest.approx(curve.max() + 0.05 * span)
    spiked = robust_range({"a": curve, "b": np.r_[curve[:-1], 7206.0]})
    assert spiked.above == ("b",) and spiked.hi < 3
    assert spiked.note(noun="group") == "1 group above the range"


def test_robust_range_in_log_mode_is_given_in_data_units_and_log_units_for_plotly():
    series = _normal_val_loss()
    series["zero"] = np.array([0.0, -1.0, 0.3])  # values a log axis cannot draw are ignored
    result = robust_range(series, log=True)
    normal = np.concatenate(list(_normal_val_loss().values()))
    assert result.log and not result.clipped
    assert 0 < result.lo < normal.min() and result.hi > normal.max()
    assert result.plotly_range() == pytest.approx([math.log10(result.lo), math.log10(result.hi)])
    # 7,206 is only four decades out: on a log axis it is shown
    assert robust_range({**series, "diverged": [0.5, 7206.0]}, log=True).clipped is False
    wild = robust_range({**series, "diverged": [0.5, 1e30]}, log=True)
    assert wild.above == ("diverged",) and wild.hi < 1e3


def test_robust_range_notes_both_sides_and_handles_nothing_to_draw():
    series = {f"run{i}": np.linspace(0.1, 0.5, 20) + i / 100 for i in range(10)}
    series["up"] = [0.3, 1e6]
    series["down1"] = [0.3, -1e6]
    series["down2"] = [-1e6]
    result = robust_range(series)
    assert (result.above, result.below) == (("up",), ("down1", "down2"))
    assert result.note() == "1 run above and 2 below the range"
    assert robust_range({"a": [None, float("nan")]}) == RobustRange(0.0, 1.0)
    assert robust_range({}, log=True).plotly_range() == pytest.approx([-1.0, 0.0])
    with pytest.raises(ValueError, match="log axis needs a range above 0"):
        RobustRange(-0.1, 1.0).plotly_range(log=True)


# -- which hyperparameters matter ---------------------------------------------------------------------
def _sweep(n: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic table of runs: validation accuracy depends strongly on the optimizer, a little on
    the learning rate, not at all on the seed."""
    rng = np.random.default_rng(seed)
    optimizer = rng.choice(["sgd", "adam", "rmsprop"], size=n)
    learning_rate = rng.choice([0.001, 0.01, 0.1], size=n)
    effect = pd.Series(optimizer).map({"sgd": 0.90, "adam": 0.97, "rmsprop": 0.95}).to_numpy()
    val = effect + 0.002 * np.log10(learning_rate) + rng.normal(0, 0.003, size=n)
    return pd.DataFrame({"task": "digits", "arch": "cnn", "optimizer": optimizer, "learning_rate": learning_rate,
                         "batch_size": rng.choice([32, 128], size=n), "seed": rng.integers(0, 1000, size=n),
                         "patience": rng.choice([None, 3], size=n), "val_accuracy": val})


FIELDS6 = ["task", "arch", "optimizer", "learning_rate", "batch_size", "seed"]


def test_varying_parameters_are_the_columns_with_more_than_one_value():
    frame = pd.DataFrame({"task": ["digits"] * 3, "patience": [None, 3, 3], "train_size": [np.nan, np.nan, None],
                          "seed": [0, 1, 2]})
    assert varying_parameters(frame, ["task", "patience", "train_size", "seed"]) == ["patience", "seed"]
    with pytest.raises(ValueError, match="fields must be columns of the runs table"):
        varying_parameters(frame, ["colour"])


def test_importance_finds_the_field_that_drives_the_target():
    result = importance(_sweep(60), [*FIELDS6, "patience"])
    assert result.fields == ("optimizer", "learning_rate", "batch_size", "seed", "patience")
    assert len(result.values) == len(result.stds) == len(result.fields)
    values = dict(zip(result.fields, result.values))
    assert max(values, key=values.get) == "optimizer"
    assert values["optimizer"] > 0.5 and abs(values["seed"]) < 0.05
    assert values["optimizer"] > 10 * max(abs(values["seed"]), abs(values["batch_size"]))
    assert result.r2 > 0.8 and (result.n_runs, result.folds) == (60, 5)
    assert result.as_frame()["field"].iloc[0] == "optimizer"
    assert result.caption().startswith("Permutation importance of each hyperparameter for validation accuracy: a "
                                       "random forest fitted on 5 folds of 60 runs, each field shuffled 5 times")
    assert "not a law" in result.caption()
    assert importance(_sweep(60), [*FIELDS6, "patience"]) == result  # deterministic for a seed


def test_importance_needs_enough_runs_and_a_varying_field():
    frame = _sweep(40)
    assert importance(frame.head(11), FIELDS6) is None
    assert importance(frame.head(12), FIELDS6) is not None
    frame.loc[:30, "val_accuracy"] = None  # only 9 runs with a target left
    assert importance(frame, FIELDS6) is None
    assert importance(_sweep(40), ["task", "arch"]) is None
    with pytest.raises(ValueError, match="target must be columns of the runs table"):
        importance(_sweep(40), FIELDS6, target="colour")


def test_batched_permutation_scores_equal_sklearns_permutation_importance():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import r2_score

    from mnistlab.analysis.comparison import _permutation_scores

    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=(40, 3)).astype(float)
    y = x[:, 0] + 0.1 * rng.normal(size=40)
    model = RandomForestRegressor(n_estimators=20, random_state=0, n_jobs=1).fit(x[:30], y[:30])
    ours = r2_score(y[30:], model.predict(x[30:])) - _permutation_scores(model, x[30:], y[30:], 5, 7)
    theirs = permutation_importance(model, x[30:], y[30:], n_repeats=5, random_state=7, scoring="r2")
    np.testing.assert_allclose(ours, theirs.importances)


# -- short run ids -----------------------------------------------------------------------------------
def test_unique_prefixes_are_unique_and_minimal():
    universe = ["abcd1234aaaaaaaa", "abcd1299bbbbbbbb", "ffff000011112222", "abce000000000000", "0123456789abcdef"]
    prefixes = unique_prefixes(universe[:4], universe)
    assert prefixes == {"abcd1234aaaaaaaa": "abcd123", "abcd1299bbbbbbbb": "abcd129",
                        "ffff000011112222": "ffff", "abce000000000000": "abce"}
    for run_id, prefix in prefixes.items():
        assert [u for u in universe if u.startswith(prefix)] == [run_id]
        if len(prefix) > 4:
            assert len([u for u in universe if u.startswith(prefix[:-1])]) > 1
    assert unique_prefixes(["abcd1234aaaaaaaa"], ["abcd1234aaaaaaaa"], min_len=6) == {"abcd1234aaaaaaaa": "abcd12"}
