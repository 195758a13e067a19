import subprocess
import sys
import time

import pytest

from mnistlab.runs.store import RunStore
from mnistlab.runs.worker import in_progress, launch, work, worker_plan
from mnistlab.settings import Settings
from tests.conftest import ROOT, tiny_config


def wait_for(predicate, seconds=180):
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
    statuses = {p.run_id: p.status for p in in_progress(store)}
    assert set(statuses) == set(run_ids) and set(statuses.values()) <= {"queued", "training"}
    assert launch(store, configs) == []  # already queued: not launched twice
    assert wait_for(lambda: all(store.exists(r) for r in run_ids)), list(store.root.glob(".tmp/*.log"))
    assert wait_for(lambda: in_progress(store) == [], 10)
    assert launch(store, configs) == []  # already stored


def test_the_queue_is_listed_in_the_order_it_will_run(store):
    configs = [tiny_config(seed=s) for s in (3, 1, 2)]
    attempts = store.live.launch([(r.run_id, r.config.to_dict(), r.canonical_json, r.config.epochs)
                                  for r in map(store.resolve, configs)])
    assert [p.run_id for p in in_progress(store)] == [a.run_id for a in attempts]
    assert [p.config.seed for p in in_progress(store)] == [3, 1, 2]


def test_a_cancelled_queued_run_is_skipped(store):
    first, second = store.resolve(tiny_config(epochs=1)), store.resolve(tiny_config(epochs=1, seed=3))
    attempts = store.live.launch([(r.run_id, r.config.to_dict(), r.canonical_json, 1) for r in (first, second)])
    store.live.request_cancel(attempts[1].id)
    assert work(store, "test-worker") == 0
    assert store.exists(first.run_id) and not store.exists(second.run_id)
    assert store.live.latest(second.run_id).state == "cancelled"


def test_a_read_only_instance_refuses_to_launch(tmp_path):
    store = RunStore(tmp_path / "runs", settings=Settings(read_only=True))
    with pytest.raises(PermissionError, match="read-only"):
        launch(store, [tiny_config()])
    assert not (tmp_path / "runs").exists()


def test_eight_processes_launching_with_a_cap_of_one_train_one_at_a_time_and_all_finish(store):
    env_cap = {"MNISTLAB_MAX_TRAININGS": "1", "MNISTLAB_STORE": str(store.root)}
    code = ("import sys; from mnistlab.runs.store import RunStore; from mnistlab.runs.worker import launch\n"
            "from tests.conftest import tiny_config\n"
            "print(launch(RunStore(), [tiny_config(epochs=1, train_size=100, seed=int(sys.argv[1]))]))\n")
    import os

    processes = [subprocess.Popen([sys.executable, "-c", code, str(seed)], cwd=ROOT, env={**os.environ, **env_cap},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(8)]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
    assert most_training_at_once(store) == 1
    run_ids = [store.resolve(tiny_config(epochs=1, train_size=100, seed=s)).run_id for s in range(8)]
    assert all(store.exists(run_id) for run_id in run_ids)


def test_a_run_whose_worker_died_before_claiming_it_trains_when_launched_again(store):
    config = tiny_config(epochs=1, seed=11)
    resolved = store.resolve(config)
    store._writable("test")
    store.live.launch([(resolved.run_id, resolved.config.to_dict(), resolved.canonical_json, 1)])
    # No worker ever claims it (as if the worker process was killed at start): it waits, queued.
    assert store.live.latest(resolved.run_id).state == "queued"
    assert launch(store, [config]) == []  # already queued: not queued twice, but a worker is started
    assert wait_for(lambda: store.exists(resolved.run_id))


def most_training_at_once(store, seconds=300):
    """Poll the live state until the queue is empty; the most attempts seen training together."""
    most = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = store.live.active()
        most = max(most, sum(a.state == "training" for a in active))
        if not active:
            break
        time.sleep(0.05)
    return most


def test_worker_plan_splits_the_cores_between_the_runs_that_will_train_at_once():
    assert worker_plan(2, queued=2, training=0, cores=2) == (2, 1)  # side by side, one thread each
    assert worker_plan(1, queued=2, training=0, cores=2) == (1, 2)  # the cap: one after the other, all cores
    assert worker_plan(2, queued=1, training=0, cores=2) == (1, 2)  # alone: every core
    assert worker_plan(2, queued=1, training=1, cores=2) == (1, 1)  # joins a run already training
    assert worker_plan(2, queued=3, training=2, cores=2) == (1, 1)  # cap full: one worker waits its turn
    assert worker_plan(4, queued=10, training=0, cores=16) == (4, 4)


@pytest.mark.parametrize("cap, expected", [(2, 2), (1, 1)])
def test_two_queued_runs_train_side_by_side_when_the_cap_allows_and_one_at_a_time_otherwise(tmp_path, cap, expected):
    store = RunStore(tmp_path / "runs", settings=Settings(max_trainings=cap))
    configs = [tiny_config(arch="cnn", epochs=3, train_size=600, seed=seed) for seed in (1, 2)]
    run_ids = launch(store, configs)
    assert most_training_at_once(store) == expected
    assert all(store.exists(run_id) for run_id in run_ids), list(store.root.glob(".tmp/*.log"))
    logs = list((store.root / ".tmp").glob("worker-*.log"))
    assert len(logs) == expected  # one worker process per run that may train at once
