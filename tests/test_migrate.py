"""A store written by the previous mnistlab (run format 2) opens with all its runs.

The old layout is written here exactly as the previous version wrote it (its files, its
canonical form with unresolved sizes and schema 2, its ``model.keras``), from runs trained
by today's code, so the test knows what each converted run must hold.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest

from mnistlab.runs.store import RunStore
from tests.conftest import tiny_config


def old_canonical(config, fingerprint):
    """The previous version's canonical form: sizes as given (None for defaults), schema 2."""
    return {"schema": 2, "task": config.task, "arch": config.arch, "epochs": config.epochs,
            "batch_size": config.batch_size, "optimizer": config.optimizer,
            "learning_rate": config.effective_learning_rate, "validation": config.validation,
            "validation_size": config.effective_validation_size, "train_size": config.train_size,
            "patience": config.patience, "seed": config.seed, "data": fingerprint}


def old_id(config, fingerprint):
    text = json.dumps(old_canonical(config, fingerprint), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_old_run(root, run, config=None, created=None):
    """``run`` (trained today) written in the previous version's layout; returns its old id."""
    config = config or run.config
    fingerprint = run.metrics["data"]["fingerprint"]
    rid = old_id(config, fingerprint)
    folder = root / rid
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"run_id": rid, "config": config.to_dict(), "canonical": old_canonical(config, fingerprint)}))
    (folder / "history.json").write_text(json.dumps(run.history))
    m = run.metrics
    (folder / "metrics.json").write_text(json.dumps({
        "run_id": rid, "test_loss": m["test_loss"], "test_accuracy": m["test_accuracy"],
        "epochs_run": m["epochs_run"], "final_loss": run.history[-1]["loss"],
        "final_val_loss": run.history[-1]["val_loss"], "best_val_accuracy": 0.5, "best_epoch": 1,
        "params": m["params"], "split": m["split"], "timings": m["timings"], "versions": m["versions"],
        "data": m["data"], "n_test": m["n_test"], "created": created or m["created"]}))
    p = run.predictions()
    np.savez(folder / "predictions.npz", probabilities=p.probabilities, labels=p.labels, digits=p.digits)
    if run.has_first_layer:
        kernels, biases = run.first_layer()
        np.savez(folder / "first_layer.npz", kernels=kernels, biases=biases)
    run.build_model().save(folder / "model.keras")
    (root / ".progress").mkdir(exist_ok=True)  # the old loose live state
    (root / ".progress" / f"{rid}.json").write_text("{}")
    return rid


@pytest.fixture(scope="module")
def old_store(trained_store, tmp_path_factory):
    _, runs = trained_store
    root = tmp_path_factory.mktemp("old") / "runs"
    old_ids = {name: write_old_run(root, run) for name, run in runs.items()}
    return root, runs, old_ids


def test_a_store_of_the_previous_version_opens_with_every_run_under_todays_ids(old_store, tmp_path):
    source, runs, old_ids = old_store
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    store = RunStore(root)
    listing = store.list_runs()
    assert listing.broken == []
    assert sorted(r.run_id for r in listing.runs) == sorted(r.run_id for r in runs.values())
    for name, run in runs.items():
        converted = store.load(run.run_id)
        assert converted.aliases == (old_ids[name],)
        assert store.load(old_ids[name]).run_id == run.run_id  # old links still open it
        assert converted.history == run.history
        assert converted.metrics["test_accuracy"] == run.metrics["test_accuracy"]
        assert converted.kept_epoch == len(run.history)
        np.testing.assert_array_equal(converted.predictions().probabilities, run.predictions().probabilities)
        for a, b in zip(converted.weights(), run.weights()):
            np.testing.assert_array_equal(a, b)  # model.keras became weights.npz, value for value
        assert not (converted.path / "model.keras").exists()
    assert not (root / ".progress").exists()
    assert json.loads((root / "store.json").read_text()) == {"format": 3}


def test_two_old_runs_that_were_one_training_keep_the_newer_and_both_old_ids_open_it(trained_store, tmp_path):
    _, runs = trained_store
    run = runs["mlp"]
    root = tmp_path / "runs"
    # The previous version gave 'train_size unset' and 'train_size written out' two ids for one training
    # (the stored split says which images it really used).
    explicit = write_old_run(root, run, created="2026-01-01T00:00:00.000+00:00")
    implicit = write_old_run(root, run, config=run.config.replace(train_size=None),
                             created="2026-02-01T00:00:00.000+00:00")
    assert implicit != explicit
    store = RunStore(root)
    assert [r.run_id for r in store.list_runs().runs] == [run.run_id]
    kept = store.load(run.run_id)
    assert kept.metrics["created"].startswith("2026-02-01")  # the newer one is kept
    assert store.load(implicit).run_id == store.load(explicit).run_id == run.run_id
    report = store.doctor()
    assert len(report.duplicates) == 1 and report.broken == []


def test_an_old_run_that_cannot_be_converted_stays_and_is_named_broken(trained_store, tmp_path):
    _, runs = trained_store
    root = tmp_path / "runs"
    rid = write_old_run(root, runs["mlp"])
    (root / rid / "model.keras").write_bytes(b"not a keras file")
    listing = RunStore(root).list_runs()
    assert listing.runs == [] and [b.run_id for b in listing.broken] == [rid]
    assert "older mnistlab" in listing.broken[0].reason
    assert (root / rid / "model.keras").exists()  # nothing is lost


def test_training_today_finds_a_converted_run_as_cached(old_store, tmp_path):
    source, runs, _ = old_store
    root = tmp_path / "runs"
    shutil.copytree(source, root)
    obtained = RunStore(root).get_or_train(runs["mlp"].config)
    assert obtained.cached and obtained.run.run_id == runs["mlp"].run_id
    assert tiny_config(arch="mlp", epochs=3) == runs["mlp"].config.replace(data="sample")
