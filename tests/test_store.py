import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mnistlab.errors import BrokenRun, StoreError
from mnistlab.models.training import Cancelled
from mnistlab.runs import records
from mnistlab.runs.store import RunStore, check_run_id
from tests.conftest import ROOT, tiny_config


def test_a_run_is_stored_as_one_folder_of_plain_files_each_carrying_its_id(store):
    obtained = store.get_or_train(tiny_config(arch="cnn", epochs=1))
    assert not obtained.cached
    run = obtained.run
    folder = store.root / run.run_id
    assert {p.name for p in folder.iterdir()} == {"config.json", "history.json", "metrics.json", "predictions.npz",
                                                  "weights.npz", "epochs.npz"}
    for name in records.JSON_FILES:
        assert json.loads((folder / name).read_text())["run_id"] == run.run_id
    for name in records.ARRAY_FILES + records.OPTIONAL_FILES:
        with np.load(folder / name, allow_pickle=False) as npz:
            assert str(npz["run_id"]) == run.run_id
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["data"]["kind"] == "sample" and metrics["params"] == 217_194
    assert (metrics["status"], metrics["kept_epoch"], metrics["kept_reason"]) == ("finished", 1, "last")
    assert run.predictions().probabilities.shape == (1000, 10)
    kernels, biases = run.first_layer()
    assert kernels.shape == (3, 3, 1, 32) and biases.shape == (32,)
    assert run.build_model().count_params() == 217_194


def test_the_stored_canonical_form_is_what_the_id_hashes(store):
    run = store.get_or_train(tiny_config()).run
    stored = json.loads((run.path / "config.json").read_text())
    assert records.id_of(stored["canonical"]) == run.run_id
    assert json.loads(stored["canonical"])["train_size"] == 300  # sizes explicit


def test_cached_run_is_returned_without_training(store):
    config = tiny_config()
    first = store.get_or_train(config)

    def must_not_train(*_):
        raise AssertionError("trained again")

    second = store.get_or_train(config, on_epoch=must_not_train)
    assert second.cached and second.run.run_id == first.run.run_id
    assert second.run.history == first.run.history


def test_sizes_left_unset_or_written_out_are_one_run(store):
    unset = store.resolve(tiny_config(validation="holdout", train_size=None))
    explicit = store.resolve(tiny_config(validation="holdout", validation_size=666, train_size=3334))
    larger = store.resolve(tiny_config(validation="holdout", train_size=60_000))  # all there is
    assert unset.run_id == explicit.run_id == larger.run_id
    assert unset.explicit.train_size == 3334 and unset.explicit.validation_size == 666


def test_the_data_source_is_pinned_when_resolved(store):
    resolved = store.resolve(tiny_config(data="auto"))
    assert resolved.config.data == "sample"  # the tests' MNISTLAB_DATA; a file would be its path
    assert store.resolve(resolved.config).run_id == resolved.run_id


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
    assert "not valid JSON" in reasons[other.run_id]
    with pytest.raises(BrokenRun):
        store.lookup(other.run_id)


def test_a_run_whose_config_was_edited_is_broken(store):
    run = store.get_or_train(tiny_config()).run
    path = store.root / run.run_id / "config.json"
    stored = json.loads(path.read_text())
    stored["canonical"] = stored["canonical"].replace('"epochs":2', '"epochs":99')
    path.write_text(json.dumps(stored))
    with pytest.raises(BrokenRun, match="hashes to another run id"):
        store.load(run.run_id)


def test_a_file_copied_in_from_another_run_is_named(store):
    a = store.get_or_train(tiny_config()).run
    b = store.get_or_train(tiny_config(seed=2)).run
    for name in ("history.json", "predictions.npz"):
        original = (b.path / name).read_bytes()
        (b.path / name).write_bytes((a.path / name).read_bytes())
        with pytest.raises(BrokenRun, match="belong"):
            RunStore(store.root).load(b.run_id)
        (b.path / name).write_bytes(original)
    assert RunStore(store.root).load(b.run_id).run_id == b.run_id


def test_a_broken_run_is_reported_rather_than_silently_trained_again(store):
    config = tiny_config()
    run = store.get_or_train(config).run
    (store.root / run.run_id / "history.json").unlink()
    with pytest.raises(BrokenRun):
        store.get_or_train(config)
    store.delete(run.run_id)
    assert not store.get_or_train(config).cached


def test_run_ids_are_checked_before_touching_the_disk(store):
    for bad in ["../etc", "/abs", "ABCDEF0123456789", "12", None]:
        with pytest.raises(ValueError, match="16 hexadecimal digits"):
            store.run_path(bad)
    assert check_run_id("0123456789abcdef") == "0123456789abcdef"


def test_a_cancel_stops_one_attempt_and_a_relaunch_trains(store):
    config = tiny_config(epochs=20)
    run_id = store.resolve(config).run_id

    def on_epoch(record, history):
        if record["epoch"] == 2:
            store.live.request_cancel(store.live.latest(run_id).id)

    with pytest.raises(Cancelled):
        store.get_or_train(config, on_epoch=on_epoch)
    assert not store.exists(run_id)
    cancelled = store.live.latest(run_id)
    assert cancelled.state == "cancelled" and cancelled.epochs_done == 2
    obtained = store.get_or_train(config.replace(epochs=2))  # another run: not touched by that cancel
    assert not obtained.cached
    assert not store.get_or_train(config).cached  # the cancelled one trains when launched again


def test_a_loss_that_turns_nan_is_stored_as_diverged_with_its_history(store):
    run = store.get_or_train(tiny_config(epochs=6, learning_rate=10.0)).run
    assert run.status == "diverged" and not run.is_finished
    assert run.history and run.metrics["test_accuracy"] is None and run.kept_epoch is None
    assert {p.name for p in run.path.iterdir()} == {"config.json", "history.json", "metrics.json"}
    assert "diverged" in run.kept_description()
    with pytest.raises(BrokenRun, match="diverged"):
        run.predictions()
    assert store.live.latest(run.run_id).state == "diverged"
    assert store.get_or_train(tiny_config(epochs=6, learning_rate=10.0)).cached  # it is a result too


def _launch(store, config, *extra):
    args = [sys.executable, "-m", "mnistlab", "train", "--store", str(store.root), "--data", "sample",
            "--arch", config.arch, "--epochs", str(config.epochs), "--train-size", str(config.train_size),
            "--validation", config.validation, "--json", *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_training_leaves_no_finished_run_and_the_next_launch_completes(store):
    config = tiny_config(epochs=40, train_size=1000)
    run_id = store.resolve(config).run_id
    process = _launch(store, config)
    deadline = time.monotonic() + 90
    attempt = None
    while time.monotonic() < deadline:
        attempt = store.live.latest(run_id)
        if attempt is not None and attempt.epochs_done >= 1:
            break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("training never reported an epoch: " + process.communicate()[1][-2000:])
    assert attempt.state == "training"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not store.exists(run_id)
    obtained = store.get_or_train(config)  # the dead attempt is noticed (stale heartbeat) and requeued
    assert not obtained.cached and len(obtained.run.history) == 40
    assert store.live.active() == []


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


def test_runs_frame_has_one_row_per_run_with_the_kept_models_figures(store):
    store.get_or_train(tiny_config())
    store.get_or_train(tiny_config(arch="cnn", epochs=1))
    frame = store.runs_frame()
    assert len(frame) == 2
    assert {"run_id", "arch", "status", "test_accuracy", "kept_epoch", "val_accuracy", "params",
            "train_seconds"} <= set(frame.columns)


def test_a_store_path_that_is_a_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    store = RunStore(path)
    with pytest.raises(StoreError, match="is a file, not a folder"):
        store.list_runs()
    with pytest.raises(StoreError, match="a-file"):
        store.get_or_train(tiny_config())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("step", ["save_predictions", "save_weights", "_write", "rename"])
def test_a_disk_fault_at_any_write_step_gives_a_clear_error_and_stores_nothing(store, monkeypatch, step, code):
    import mnistlab.runs.store as store_module

    good = store.get_or_train(tiny_config(epochs=1)).run

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(store.root))

    if step == "rename":
        monkeypatch.setattr(store_module.os, "rename", fail)
    elif step == "_write":
        monkeypatch.setattr(store_module, "_write", fail)
    else:
        monkeypatch.setattr(records, step, fail)
    config = tiny_config(epochs=1, seed=5)
    with pytest.raises(StoreError) as info:
        store.get_or_train(config)
    assert ("disk is full" if code == errno.ENOSPC else "read-only") in str(info.value)
    monkeypatch.undo()
    assert [r.run_id for r in RunStore(store.root).list_runs().runs] == [good.run_id]
    assert store.live.latest(store.resolve(config).run_id).state == "failed"
    assert not any((store.root / ".tmp").glob("run-*"))


def test_download_as_keras_builds_the_kept_model_from_its_weights(store, tmp_path):
    import keras

    run = store.get_or_train(tiny_config(arch="cnn", epochs=1)).run
    path = tmp_path / "model.keras"
    path.write_bytes(run.keras_file())
    model = keras.saving.load_model(path)  # our own file, made just now: safe to load in a test
    from mnistlab.datasets.mnist import load_mnist
    from mnistlab.models.training import prepare_images

    images = prepare_images(load_mnist("sample").x_test[:50], "cnn")
    np.testing.assert_allclose(model.predict(images, verbose=0), run.predictions().probabilities[:50], atol=1e-5)
