import time

import pytest

from mnistlab.runs import worker as jobs
from mnistlab.runs.store import RunStore
from mnistlab.settings import LimitError, ReadOnlyError, Settings, load_settings
from tests.conftest import tiny_config


def test_settings_come_from_the_environment_or_secrets():
    settings = load_settings({"MNISTLAB_READ_ONLY": "true", "MNISTLAB_MAX_EPOCHS": "5"},
                             secrets={"MNISTLAB_MAX_TRAININGS": 1, "OTHER": "x"})
    assert settings == Settings(read_only=True, max_epochs=5, max_train_size=None, max_trainings=1)
    assert load_settings({}) == Settings()
    with pytest.raises(ValueError, match="MNISTLAB_MAX_EPOCHS must be a positive whole number, got 'many'"):
        load_settings({"MNISTLAB_MAX_EPOCHS": "many"})


def test_read_only_serves_stored_runs_and_refuses_every_writing_action(trained_store, tmp_path):
    store, runs = trained_store
    viewer = RunStore(store.root, settings=Settings(read_only=True))
    assert viewer.get_or_train(runs["mlp"].config).cached  # reading is fine
    for action in (lambda: viewer.get_or_train(tiny_config(seed=99)),
                   lambda: viewer.delete(runs["mlp"].run_id),
                   lambda: viewer.live.request_cancel(1),
                   lambda: viewer.live.dismiss(1),
                   lambda: jobs.launch(viewer, [tiny_config(seed=99)])):
        with pytest.raises(ReadOnlyError, match="read-only"):
            action()
    assert store.exists(runs["mlp"].run_id)


def test_limits_refuse_runs_beyond_them(tmp_path):
    store = RunStore(tmp_path / "runs", settings=Settings(max_epochs=3, max_train_size=500))
    with pytest.raises(LimitError, match="epochs must be at most 3 on this server"):
        store.get_or_train(tiny_config(epochs=4))
    with pytest.raises(LimitError, match="train_size must be at most 500"):
        store.get_or_train(tiny_config(train_size=1000))
    with pytest.raises(LimitError, match="got 3,334"):  # all of the sample's training images
        store.get_or_train(tiny_config(train_size=None, validation="holdout"))
    assert not store.get_or_train(tiny_config(epochs=1)).cached


def test_over_the_cap_a_launch_waits_in_the_queue_and_trains_when_a_slot_frees(tmp_path):
    store = RunStore(tmp_path / "runs", settings=Settings(max_trainings=1))
    busy = store.resolve(tiny_config(seed=5))
    store._writable("test")
    store.live.launch([(busy.run_id, busy.config.to_dict(), busy.canonical_json, 2)])
    held = store.live.claim("someone-else", 1)  # another worker trains: the one slot is taken
    waiting = tiny_config(seed=6)
    assert jobs.launch(store, [waiting]) == [store.resolve(waiting).run_id]  # queued, not refused
    time.sleep(3)
    assert store.live.latest(store.resolve(waiting).run_id).state == "queued"  # it waits its turn
    store.live.finish(held.id, "cancelled")  # the slot frees
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not store.exists(store.resolve(waiting).run_id):
        time.sleep(0.2)
    assert store.exists(store.resolve(waiting).run_id)
