import time

from mnistlab.runs.worker import launch, work
from tests.conftest import tiny_config


def wait_for(predicate, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_launched_worker_trains_the_queue_in_its_own_process(store):
    configs = [tiny_config(epochs=2), tiny_config(arch="cnn", epochs=1)]
    run_ids = launch(store, configs)
    assert len(run_ids) == 2
    statuses = {p.run_id: p.status for p in store.in_progress()}
    assert set(statuses) == set(run_ids) and set(statuses.values()) <= {"queued", "training"}
    assert launch(store, configs) == []  # already queued: not launched twice
    assert wait_for(lambda: all(store.exists(r) for r in run_ids)), list(store.root.glob(".progress/*.log"))
    assert store.in_progress() == []
    assert launch(store, configs) == []  # already stored


def test_a_cancelled_queued_run_is_skipped(store):
    first, second = tiny_config(epochs=1), tiny_config(epochs=1, seed=3)
    second_id, _ = store.resolve(second)
    store.request_cancel(second_id)
    assert work(store, [first, second]) == 0
    assert store.exists(store.resolve(first)[0]) and not store.exists(second_id)
    assert store.progress(second_id).status == "cancelled"


def test_a_queued_run_whose_worker_died_shows_as_interrupted(store, monkeypatch):
    import mnistlab.runs.store as store_module

    config = tiny_config()
    run_id, _ = store.resolve(config)
    store.mark_queued(run_id, config, "0" * 32)
    assert store.progress(run_id).status == "queued"  # just launched: the worker may still be starting
    monkeypatch.setattr(store_module, "WORKER_START_GRACE_SECONDS", 0.0)
    assert store.progress(run_id).status == "interrupted"
