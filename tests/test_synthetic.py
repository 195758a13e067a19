"""The synthetic run writer: its runs pass the store's own checks, under the ids the store computes."""

import json
from collections import defaultdict

import numpy as np
import pytest

from mnistlab.datasets.mnist import resolve_source
from mnistlab.models.architectures import weight_shapes
from mnistlab.runs.config import resolve
from mnistlab.runs.store import RunStore
from tests.synthetic import synthetic_configs, write_runs


def _check_healthy(store: RunStore, ids: list[str], diverged: set[int]) -> list:
    listing = RunStore(store.root).list_runs()  # a fresh store: everything read from disk
    assert listing.broken == []
    assert sorted(r.run_id for r in listing.runs) == sorted(ids)
    by_id = {r.run_id: r for r in listing.runs}
    for index, run_id in enumerate(ids):
        run = by_id[run_id]
        if index in diverged:
            assert run.status == "diverged" and run.metrics["test_accuracy"] is None and run.kept_epoch is None
            assert 1 <= len(run.history) <= 2 and max(h["val_loss"] or 0 for h in run.history) > 1000
            assert {p.name for p in run.path.iterdir()} == {"config.json", "history.json", "metrics.json"}
            continue
        assert run.status == "finished" and run.kept_epoch == len(run.history) == run.config.epochs
        predictions = run.predictions()
        assert predictions.probabilities.shape == (run.metrics["n_test"], 10)
        accuracy = float((predictions.probabilities.argmax(1) == predictions.labels).mean())
        assert accuracy == pytest.approx(run.metrics["test_accuracy"])
        assert abs(run.metrics["test_accuracy"] - run.metrics["val_accuracy"]) < 0.02
        assert 0.9 <= run.history[-1]["val_accuracy"] <= 0.995
        assert [w.shape for w in run.weights()] == weight_shapes(run.config.arch, "digits")
        assert run.epochs().classes.shape == (len(run.history), run.metrics["n_test"])
        losses = [h["loss"] for h in run.history]
        assert losses[-1] < losses[0] and all(h["elapsed"] > 0 for h in run.history)
        assert [h["elapsed"] for h in run.history] == sorted(h["elapsed"] for h in run.history)
    report = RunStore(store.root).doctor()
    assert report.healthy and report.runs == len(ids), report.as_dict()
    created = [by_id[run_id].metrics["created"] for run_id in ids]
    assert created == sorted(created) and len(set(created)) == len(created)
    return listing.runs


def test_twelve_runs_with_one_diverged_pass_the_stores_checks_under_the_stores_ids(tmp_path):
    store = RunStore(tmp_path / "runs")
    configs = synthetic_configs(12)
    assert len(set(configs)) == 12 and {c.arch for c in configs} == {"mlp", "cnn", "deep_cnn"}
    ids = write_runs(store, configs, diverged=(4,))
    source = resolve_source("sample")
    assert ids == [resolve(config, source).run_id for config in configs]
    runs = _check_healthy(store, ids, {4})
    assert not list((store.root / ".tmp").iterdir())  # each folder was renamed into place
    assert json.loads((store.root / "store.json").read_text()) == {"format": 3}
    assert store.lookup(ids[0]).run_id == ids[0]
    assert {r.metrics["data"]["kind"] for r in runs} == {"sample"}


def test_fifty_runs_of_five_seeds_form_ten_seed_groups(tmp_path):
    store = RunStore(tmp_path / "runs")
    configs = synthetic_configs(50, seeds=5)
    assert [c.seed for c in configs] == [0, 1, 2, 3, 4] * 10
    ids = write_runs(store, configs)
    source = resolve_source("sample")
    assert ids == [resolve(config, source).run_id for config in configs]
    runs = _check_healthy(store, ids, set())
    groups = defaultdict(list)
    for run in runs:
        groups[json.dumps({k: v for k, v in run.canonical.items() if k != "seed"}, sort_keys=True)].append(run)
    assert len(groups) == 10 and all(sorted(r.config.seed for r in g) == [0, 1, 2, 3, 4] for g in groups.values())


def test_final_accuracy_depends_on_optimizer_and_arch_more_than_on_seed(tmp_path):
    store = RunStore(tmp_path / "runs")
    write_runs(store, synthetic_configs(36, seeds=2), n_test=100, epochs_npz=False)
    frame = store.runs_frame()

    def by(column):
        return frame.groupby(column)["val_accuracy"].mean()

    assert by("optimizer")["adam"] - by("optimizer")["sgd"] > 0.005
    assert by("arch")["deep_cnn"] - by("arch")["mlp"] > 0.008
    optimizer_effect = by("optimizer")["adam"] - by("optimizer")["sgd"]
    assert abs(by("seed")[0] - by("seed")[1]) < optimizer_effect / 4
    assert np.ptp(by("batch_size")) < optimizer_effect / 2


def test_more_runs_than_the_grid_stay_distinct_and_rewriting_replaces(tmp_path):
    configs = synthetic_configs(40)  # the default grid has 18: later rounds vary the learning rate
    assert len(set(configs)) == 40 and len({(c.optimizer, c.effective_learning_rate, c.arch, c.batch_size)
                                            for c in configs}) == 40
    store = RunStore(tmp_path / "runs")
    first = write_runs(store, configs[:3], n_test=200)
    again = write_runs(store, configs[:3], n_test=200, diverged=(1,), rng_seed=1)
    assert first == again
    _check_healthy(store, again, {1})
    with pytest.raises(ValueError, match="trains the same"):
        write_runs(store, [configs[0], configs[0]])
