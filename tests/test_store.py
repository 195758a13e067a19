import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mnistlab.models.training import Cancelled
from mnistlab.runs.store import BrokenRun, RunStore, check_run_id
from tests.conftest import ROOT, tiny_config


def test_a_run_is_stored_as_one_folder_with_every_part(store):
    obtained = store.get_or_train(tiny_config(arch="cnn", epochs=1))
    assert not obtained.cached
    folder = store.root / obtained.run.run_id
    assert {p.name for p in folder.iterdir()} == {"config.json", "history.json", "metrics.json", "predictions.npz",
                                                  "first_layer.npz", "model.keras"}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "sample" and metrics["params"] == 217_194
    with np.load(folder / "predictions.npz", allow_pickle=False) as npz:
        assert npz["probabilities"].shape == (1000, 10)
    model = obtained.run.load_model()
    assert model.count_params() == 217_194


def test_cached_run_is_returned_without_training(store):
    config = tiny_config()
    first = store.get_or_train(config)

    def must_not_train(*_):
        raise AssertionError("trained again")

    second = store.get_or_train(config, on_epoch=must_not_train)
    assert second.cached and second.run.run_id == first.run.run_id
    assert second.run.history == first.run.history


def test_listing_skips_and_reports_broken_folders(store):
    good = store.get_or_train(tiny_config()).run
    other = store.get_or_train(tiny_config(seed=1)).run
    (store.root / other.run_id / "metrics.json").write_text("{ truncated")
    (store.root / "not-a-run").mkdir()
    half = store.root / "0123456789abcdef"
    half.mkdir()
    (half / "config.json").write_text("{}")
    listing = store.list_runs()
    assert [r.run_id for r in listing.runs] == [good.run_id]
    reasons = {b.run_id: b.reason for b in listing.broken}
    assert set(reasons) == {other.run_id, "not-a-run", "0123456789abcdef"}
    assert "missing" in reasons["0123456789abcdef"]
    with pytest.raises(BrokenRun):
        store.lookup(other.run_id)


def test_a_run_whose_config_was_edited_is_broken(store):
    run = store.get_or_train(tiny_config()).run
    path = store.root / run.run_id / "config.json"
    stored = json.loads(path.read_text())
    stored["config"]["epochs"] = 99
    path.write_text(json.dumps(stored))
    with pytest.raises(BrokenRun, match="hashes to another run id"):
        store.load(run.run_id)


def test_a_broken_run_is_replaced_by_training_it_again(store):
    config = tiny_config()
    run = store.get_or_train(config).run
    (store.root / run.run_id / "history.json").unlink()
    # get_or_train on a broken folder reports it rather than silently retraining
    with pytest.raises(BrokenRun):
        store.get_or_train(config)
    store.delete(run.run_id)
    assert not store.get_or_train(config).cached


def test_run_ids_are_checked_before_touching_the_disk(store):
    for bad in ["../etc", "/abs", "ABCDEF0123456789", "12", None]:
        with pytest.raises(ValueError, match="16 hexadecimal digits"):
            store.run_path(bad)
    assert check_run_id("0123456789abcdef") == "0123456789abcdef"


def test_cancel_request_stops_training_and_stores_nothing(store):
    config = tiny_config(epochs=20)
    run_id, _ = store.resolve(config)

    def on_epoch(record, history):
        if record["epoch"] == 2:
            store.request_cancel(run_id)

    with pytest.raises(Cancelled):
        store.get_or_train(config, on_epoch=on_epoch)
    assert not store.exists(run_id)
    progress = store.progress(run_id)
    assert progress.status == "cancelled" and progress.epochs_done == 2
    assert not store.get_or_train(config.replace(epochs=2)).cached


def _launch(store, config, *extra):
    args = [sys.executable, "-m", "mnistlab", "train", "--store", str(store.root), "--data", "sample",
            "--arch", config.arch, "--epochs", str(config.epochs), "--train-size", str(config.train_size),
            "--validation", config.validation, "--json", *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_training_leaves_no_finished_run_and_the_next_launch_completes(store):
    config = tiny_config(epochs=40, train_size=1000)
    run_id, _ = store.resolve(config)
    process = _launch(store, config)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        progress = store.progress(run_id)
        if progress is not None and progress.epochs_done >= 1:
            break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("training never reported an epoch: " + process.communicate()[1][-2000:])
    assert progress.status == "training"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not store.exists(run_id)
    assert store.progress(run_id).status == "interrupted"
    assert [p.run_id for p in store.in_progress()] == [run_id]
    obtained = store.get_or_train(config)
    assert not obtained.cached and len(obtained.run.history) == 40
    assert store.progress(run_id) is None and store.in_progress() == []


def test_two_processes_launching_one_config_train_it_once(store):
    config = tiny_config(epochs=6, train_size=1000)
    processes = [_launch(store, config) for _ in range(2)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    assert sorted(r["status"] for r in results) == ["cached", "trained"]
    assert results[0]["run_id"] == results[1]["run_id"]
    assert results[0]["metrics"] == results[1]["metrics"]


def test_store_location_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_STORE", str(tmp_path / "elsewhere"))
    assert RunStore().root == (tmp_path / "elsewhere").resolve()


def test_runs_frame_has_one_row_per_run_with_key_figures(store):
    store.get_or_train(tiny_config())
    store.get_or_train(tiny_config(arch="cnn", epochs=1))
    frame = store.runs_frame()
    assert len(frame) == 2
    assert {"run_id", "arch", "test_accuracy", "best_val_accuracy", "best_epoch", "params",
            "train_seconds"} <= set(frame.columns)
    assert os.path.isdir(store.root)


def test_runs_of_an_older_schema_stay_readable_but_are_not_reused(store):
    config = tiny_config()
    run = store.get_or_train(config).run
    fingerprint = run.metrics["data"]["fingerprint"]
    old_id = config.run_id(fingerprint, schema=1)
    stored = json.loads((run.path / "config.json").read_text())
    stored["canonical"]["schema"] = 1
    (run.path / "config.json").write_text(json.dumps(stored))
    os.rename(run.path, store.root / old_id)
    assert store.load(old_id).config == config  # still listed and readable
    assert [r.run_id for r in store.list_runs().runs] == [old_id]
    assert store.lookup(run.run_id) is None  # the current trainer's id is a different run
