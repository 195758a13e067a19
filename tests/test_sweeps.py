"""Sweeps: grids expand as the table says; local (joblib) and Dask sweeps store each run once."""

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from mnistlab.errors import ConfigError
from mnistlab.runs import worker
from mnistlab.runs.store import RunStore
from mnistlab.settings import Settings
from mnistlab.sweeps import (
    MAX_RUNS,
    RECIPES,
    Sample,
    expand,
    make_plan,
    make_sweep,
    progress,
    recipe_rows,
    recipes_sweep,
)
from mnistlab.sweeps_exec import (
    _RemoteRuns,
    _train_remote,
    cancel_sweep,
    plan_sweep,
    retry_failed,
    run_dask,
    run_local,
    sweep_progress,
)
from tests.conftest import ROOT, tiny_config

TINY = {"epochs": 1, "train_size": 200, "validation": "fraction"}


# -- a sweep is data ---------------------------------------------------------------------------
def test_a_grid_expands_to_its_configurations_in_a_stable_order_without_repeats():
    sweep = make_sweep({"optimizer": "sgd,adam", "arch": ["mlp", "cnn", "mlp"], "batch_size": [32, "32", 128],
                        "epochs": 5}, data="sample")
    configs = expand(sweep)
    assert len(configs) == 2 * 2 * 2  # "mlp" twice and 32 / "32" are one value each
    assert [(c.arch, c.batch_size, c.optimizer) for c in configs[:4]] == [
        ("mlp", 32, "sgd"), ("mlp", 32, "adam"), ("mlp", 128, "sgd"), ("mlp", 128, "adam")]
    assert all(c.epochs == 5 and c.data == "sample" for c in configs)
    assert expand(sweep) == configs  # stable
    # a learning rate equal to the optimizer's default is the same training as leaving it unset
    same = make_sweep({"optimizer": "sgd", "learning_rate": ["none", 0.01, 0.1]}, data="sample")
    assert [c.learning_rate for c in expand(same)] == [None, 0.1]


def test_seeds_n_means_seeds_zero_to_n_minus_one_and_vary_fastest():
    configs = expand(make_sweep({"arch": "mlp,cnn"}, seeds=3, data="sample"))
    assert [(c.arch, c.seed) for c in configs] == [("mlp", 0), ("mlp", 1), ("mlp", 2), ("cnn", 0), ("cnn", 1),
                                                    ("cnn", 2)]


@pytest.mark.parametrize("grid, seeds, message", [
    ({"batch_size": [32, 0]}, None, "batch_size must be an integer in [1, 60000], got 0"),
    ({"arch": "mlp,resnet"}, None, "arch must be one of 'mlp', 'cnn'"),
    ({"optimizer": []}, None, "optimizer must be a non-empty list of values"),
    ({"learning_rate": "0.1,-1"}, None, "learning_rate must be a number in (0, 10], got -1"),
    ({"colour": "red"}, None, "unknown sweep field(s) ['colour']"),
    ({"seed": [1, 2]}, 3, "give seed (a list of seeds) or seeds"),
    ({}, 0, "seeds must be an integer in [1, 1000]"),
    ({"validation": "holdout,test", "validation_size": 0.2}, None,
     "validation_size (holdout images) must be an integer"),
])
def test_bad_grids_are_refused_with_the_field_tables_messages(grid, seeds, message):
    with pytest.raises(ConfigError) as caught:
        expand(make_sweep(grid, seeds=seeds, data="sample"))
    assert message in str(caught.value)


def test_a_sweep_over_the_bound_says_how_to_raise_it():
    grid = {"batch_size": list(range(1, 101)), "arch": "mlp,cnn,deep_cnn"}
    with pytest.raises(ConfigError, match=f"expands to 1,500 runs, more than the limit of {MAX_RUNS}.*--max-runs 1500"):
        make_sweep(grid, seeds=5)
    assert len(expand(make_sweep(grid, seeds=5, max_runs=1500))) == 1500  # the limit raised: accepted


def test_a_plan_splits_stored_from_to_train_and_estimates_from_stored_runs_of_the_same_arch():
    configs = expand(make_sweep({"arch": "mlp,cnn,deep_cnn", "epochs": 2}, data="sample"))
    items = [(c, f"id{i}", i == 0, 1000) for i, c in enumerate(configs)] + [(configs[1], "id1", False, 1000)]
    samples = [Sample("cnn", 32, 500, 4, 10.0), Sample("cnn", 128, 500, 1, 99.0)]  # 0.005 s per image-epoch at 32
    plan = make_plan("s", items, samples, jobs=2, cap=1)
    assert [r.stored for r in plan.runs] == [True, False, False] and plan.repeated == 1
    assert plan.estimate_seconds == pytest.approx(0.005 * 1000 * 2)  # cnn only; deep_cnn has no stored run
    assert plan.unestimated == 1 and plan.parallel == 1
    assert "3 runs: 1 stored, 2 to train; about 10 s with 1 at a time" in plan.summary()
    assert "MNISTLAB_MAX_TRAININGS allows 1" in plan.notes[0] and "MNISTLAB_MAX_TRAININGS=2" in plan.notes[0]


def test_progress_reads_as_a_sweep():
    class A:
        def __init__(self, state, total=4, done=0):
            self.state, self.epochs_total, self.history = state, total, [{"seconds": 30.0}] * done

    attempts = {"a": A("finished"), "b": A("training", done=1), "c": A("queued"), "d": A("failed"), "e": A("training")}
    p = progress("s", ["a", "b", "c", "d", "e", "f"], {"a"}, attempts, epoch_seconds=[30.0])
    assert (p.done, p.training, p.queued, p.unfinished, p.waiting, p.total) == (1, 2, 1, 1, 1, 6)
    assert p.text() == "1 of 6 done, 2 training, 1 queued, 1 failed or cancelled, ETA 3 min"  # 11 epochs, 2 at once


def test_the_recipes_sweep_is_the_eight_published_configurations():
    configs = expand(recipes_sweep(seeds=2, data="sample"))
    assert len(configs) == 16
    keras = [c for c in configs if c.arch in ("mlp", "cnn", "deep_cnn")]
    assert {(c.task, c.optimizer, c.batch_size, c.validation, c.epochs) for c in keras} == {
        ("digits", "sgd", 32, "holdout", 30), ("parity", "sgd", 32, "holdout", 30)}
    ch16 = [c for c in configs if c.arch in ("mlp_512", "cnn_dropout")]
    assert {(c.optimizer, c.batch_size, c.validation, c.validation_size, c.patience) for c in ch16} == {
        ("adam", 200, "fraction", 0.25, 10)}
    rows = {r["recipe"]: r for r in recipe_rows({"digits/cnn": [0.9870, 0.9880], "ch16/mlp_512": [0.98]})}
    assert [r.published for r in RECIPES] == [97.68, 98.76, 99.18, 98.66, 98.82, 99.62, 98.11, 99.13]
    assert rows["digits/cnn"]["mean"] == pytest.approx(98.75) and rows["digits/cnn"]["n"] == 2
    assert rows["digits/cnn"]["diff_pp"] == pytest.approx(-0.01)
    assert rows["ch16/mlp_512"]["std"] == 0.0 and rows["digits/mlp"]["mean"] is None


# -- the live state and the app's controls (no training) ----------------------------------------
def test_cancel_and_retry_act_on_the_whole_sweep(store, monkeypatch):
    monkeypatch.setattr(worker, "start_worker", lambda store, **options: None)
    plan = plan_sweep(store, make_sweep({"arch": "mlp,cnn", **TINY}, seeds=2, data="sample", name="s1"))
    assert len(worker.launch(store, [r.config for r in plan.runs], sweep="s1")) == 4
    assert sweep_progress(store, "s1").text() == "0 of 4 done, 4 queued"
    assert cancel_sweep(store, "s1") == 4
    assert sweep_progress(store, "s1").text() == "0 of 4 done, 4 failed or cancelled"
    assert sorted(retry_failed(store, "s1")) == sorted(r.run_id for r in plan.runs)
    assert store.live.sweeps()[0]["name"] == "s1" and store.live.sweeps()[0]["runs"] == 4


# -- local: joblib processes on the one queue ---------------------------------------------------
def attempts_by_run(store) -> dict[str, list[str]]:
    with sqlite3.connect(store.root / "live.sqlite3") as conn:
        rows = conn.execute("SELECT run_id, state FROM attempts ORDER BY id").fetchall()
    out: dict[str, list[str]] = {}
    for run_id, state in rows:
        out.setdefault(run_id, []).append(state)
    return out


def assert_each_run_stored_once(store, plan):
    listing = store.list_runs()
    assert listing.broken == []
    assert sorted(r.run_id for r in listing.runs) == sorted(r.run_id for r in plan.runs)
    for run_id, states in attempts_by_run(store).items():
        assert states.count("finished") <= 1, (run_id, states)  # trained (or imported) once
    assert not [p for p in (store.root / ".tmp").glob("*") if not p.name.endswith(".log")]


def test_two_local_jobs_train_the_sweep_once_and_a_dashboard_launch_meanwhile_adds_nothing(tmp_path):
    store = RunStore(tmp_path / "runs", settings=Settings(max_trainings=2))
    sweep = make_sweep({"arch": "mlp", "optimizer": "sgd,adam", **TINY}, seeds=2, data="sample", name="local")
    plan = plan_sweep(store, sweep, jobs=2)
    last = plan.runs[-1]
    results, errors = [], []

    def go():
        try:
            results.extend(run_local(store, plan, jobs=2, threads_per_job=1))
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 60
    while not store.live.sweep_run_ids("local") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.launch(store, [last.config]) == []  # the page's launch: already queued by the sweep
    thread.join(180)
    assert not errors and not thread.is_alive()
    assert sorted(o.run_id for o in results) == sorted(r.run_id for r in plan.runs)
    assert all(o.stored for o in results)
    assert_each_run_stored_once(store, plan)
    assert sum(states.count("finished") for states in attempts_by_run(store).values()) == 4
    assert plan_sweep(store, sweep, jobs=2).to_train == []  # again: nothing to train
    assert run_local(store, plan_sweep(store, sweep), jobs=2) == []


# -- a Dask cluster ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_a_dask_sweep_stores_each_run_once_and_running_it_again_trains_nothing(tmp_path, dask_cluster):
    store = RunStore(tmp_path / "runs")
    sweep = make_sweep({"arch": "mlp", "optimizer": "sgd,adam", **TINY}, seeds=2, data="sample", name="remote")
    plan = plan_sweep(store, sweep)
    outcomes = run_dask(store, plan, dask_cluster)
    assert sorted(o.state for o in outcomes) == ["trained"] * 4
    assert_each_run_stored_once(store, plan)
    attempts = store.live.sweep_attempts("remote")
    assert {a.worker for a in attempts.values()} == {f"dask:{dask_cluster.scheduler.address}"}
    assert all(a.state == "finished" and a.history for a in attempts.values())
    assert sweep_progress(store, "remote").text() == "4 of 4 done"
    again = plan_sweep(store, sweep)
    assert again.to_train == [] and run_dask(store, again, dask_cluster) == []


def test_a_dask_worker_killed_during_the_sweep_is_retried_and_nothing_is_stored_twice(tmp_path, dask_cluster):
    store = RunStore(tmp_path / "runs")
    sweep = make_sweep({"arch": "cnn", "optimizer": "sgd,adam", **TINY, "epochs": 2, "train_size": 600},
                       data="sample", name="killed")
    plan = plan_sweep(store, sweep)
    results, errors = [], []

    def go():
        try:
            results.extend(run_dask(store, plan, dask_cluster))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(a.state == "training" for a in store.live.active()):
        time.sleep(0.05)
    busy = []
    while time.monotonic() < deadline and not busy:
        busy = [address for address, keys in dask_cluster.processing().items() if keys]
        time.sleep(0.05)
    time.sleep(0.5)  # into its training
    pids = dask_cluster.run(os.getpid, workers=busy[:1])
    os.kill(pids[busy[0]], signal.SIGKILL)
    thread.join(240)
    assert not errors and not thread.is_alive(), errors
    assert sorted(o.run_id for o in results) == sorted(r.run_id for r in plan.runs)
    assert all(o.state == "trained" for o in results), [o.line() for o in results]
    assert_each_run_stored_once(store, plan)


def run_dask_polling(store, plan, client, name, look):
    """Run ``run_dask`` in a thread; call ``look(attempts)`` with the sweep's attempts every 10 ms meanwhile."""
    results, errors = [], []

    def go():
        try:
            results.extend(run_dask(store, plan, client))
        except BaseException as exc:  # noqa: BLE001 -- shown by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline:
        look(store.live.sweep_attempts(name))
        time.sleep(0.01)
    thread.join(60)
    assert not errors and not thread.is_alive(), errors
    return results


def test_a_dask_run_shows_each_epoch_live_while_it_trains(tmp_path, dask_cluster):
    store = RunStore(tmp_path / "runs")
    sweep = make_sweep({"arch": "cnn", **TINY, "epochs": 3, "train_size": 600}, seeds=2, data="sample",
                       name="live")
    plan = plan_sweep(store, sweep)
    seen: dict[str, list[list[dict]]] = {}  # run id -> the histories read while it trained on the cluster

    def look(attempts):
        for run_id, attempt in attempts.items():
            # "imported from the Dask cluster" is the whole history written when the run came back: not live
            if attempt.state == "training" and attempt.history and attempt.message.startswith(
                    "training on the Dask cluster at "):
                seen.setdefault(run_id, []).append(attempt.history)

    outcomes = run_dask_polling(store, plan, dask_cluster, "live", look)
    assert sorted(o.state for o in outcomes) == ["trained", "trained"], [o.line() for o in outcomes]
    assert sorted(seen) == sorted(r.run_id for r in plan.runs), "no epoch reached the live state during training"
    for run_id, histories in seen.items():
        stored = store.load(run_id).history
        for history in histories:  # the real epochs, 1..k of 3, as the run stored them
            assert 1 <= len(history) <= 3 and history == stored[:len(history)]
    assert all(a.state == "finished" and len(a.history) == 3 for a in store.live.sweep_attempts("live").values())


def test_a_cancel_in_the_live_state_stops_the_run_on_the_dask_worker(tmp_path, dask_cluster):
    store = RunStore(tmp_path / "runs")
    sweep = make_sweep({"arch": "cnn", **TINY, "epochs": 200, "train_size": 600}, data="sample", name="stop")
    plan = plan_sweep(store, sweep)
    asked = []

    def look(attempts):  # the app's cancel button, once the first epoch shows
        for attempt in attempts.values():
            if attempt.state == "training" and attempt.history and not asked:
                store.live.request_cancel(attempt.id)
                asked.append(len(attempt.history))

    outcomes = run_dask_polling(store, plan, dask_cluster, "stop", look)
    assert asked, "no epoch reached the live state"
    assert [o.state for o in outcomes] == ["cancelled"], [o.line() for o in outcomes]
    attempt = store.live.sweep_attempts("stop")[plan.runs[0].run_id]
    assert attempt.state == "cancelled" and attempt.message == "cancelled on request"
    assert len(attempt.history) < 200 and not store.exists(plan.runs[0].run_id)


def test_ctrl_c_during_a_dask_sweep_stops_the_runs_still_training_on_the_workers(tmp_path, dask_cluster):
    store = RunStore(tmp_path / "runs")
    # A quick run and a long one start together on the two workers; Ctrl-C comes when the quick one ends.
    sweep = make_sweep({"arch": "cnn", **TINY, "epochs": "1,1000", "train_size": 600}, data="sample", name="ctrl-c")
    plan = plan_sweep(store, sweep)
    long_run = next(r for r in plan.runs if r.config.epochs == 1000)

    def interrupt(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dask(store, plan, dask_cluster, on_result=interrupt)
    # Both single-thread workers are free again: a training still running would hold one for minutes.
    started = time.monotonic()
    for address in dask_cluster.scheduler_info()["workers"]:
        assert dask_cluster.submit(time.monotonic, workers=[address], pure=False).result(timeout=30)
    assert time.monotonic() - started < 30
    attempt = store.live.sweep_attempts("ctrl-c")[long_run.run_id]
    assert attempt.state == "cancelled" and "Ctrl-C" in attempt.message
    assert not store.exists(long_run.run_id)


def test_epoch_events_from_the_network_are_checked_and_bad_ones_ignored(store):
    config = tiny_config(epochs=3)
    run_id = store.resolve(config).run_id
    worker.enqueue(store, [config])
    attempt = store.live.claim("dask:test", None, run_id=run_id)
    remote = _RemoteRuns(store.live, "mnistlab-sweep-test", "training on the Dask cluster at test")
    remote.add(run_id, attempt)
    one = {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "seconds": 0.1,
           "elapsed": 0.1}
    two = {**one, "epoch": 2, "elapsed": 0.2}

    def event(msg):
        return (time.time(), msg)

    hostile = [None, "text", 42, (1,), (1, 2, 3), event(None), event([run_id, [one]]), event({"run_id": run_id}),
               event({"run_id": run_id, "history": [one], "extra": 1}),  # unknown key
               event({"run_id": "0" * 16, "history": [one]}),  # a run id not claimed here
               event({"run_id": ["unhashable"], "history": [one]}), event({"run_id": 7, "history": [one]}),
               event({"run_id": run_id, "history": "[one]"}), event({"run_id": run_id, "history": []}),
               event({"run_id": run_id, "history": [one] * 10**6}),  # far more epochs than the run has
               event({"run_id": run_id, "history": [one, two, {**two, "epoch": 3}, {**two, "epoch": 4}]}),
               event({"run_id": run_id, "history": [two]}),  # not numbered from 1
               event({"run_id": run_id, "history": [{**one, "loss": float("nan")}]}),
               event({"run_id": run_id, "history": [{**one, "val_loss": float("inf")}]}),
               event({"run_id": run_id, "history": [{**one, "accuracy": "0.8"}]}),
               event({"run_id": run_id, "history": [{**one, "accuracy": True}]}),
               event({"run_id": run_id, "history": [{**one, "seconds": -1.0}]}),
               event({"run_id": run_id, "history": [{**one, "epoch": 1.0}]}),
               event({"run_id": run_id, "history": [{**one, "rogue": 1.0}]}),
               event({"run_id": run_id, "history": [{**one, "loss": {"nested": 1}}]}),
               event({"run_id": run_id, "history": [[1, 2, 3]]}),
               event({"run_id": run_id, "history": [{**one, "loss": 10**400}]})]
    assert [remote.handle(bad) for bad in hostile] == [False] * len(hostile)
    assert store.live.get(attempt.id).history == []
    remote.start()
    try:  # as the scheduler sends it: the list as a tuple (msgpack), with the worker's address
        assert remote.handle(event({"run_id": run_id, "history": (one, two), "worker": "tcp://127.0.0.1:1"}))
        deadline = time.monotonic() + 60
        while not store.live.get(attempt.id).history and time.monotonic() < deadline:
            time.sleep(0.02)
        live = store.live.get(attempt.id)
        assert live.history == [one, two] and live.message == "training on the Dask cluster at test"
        assert remote.release(run_id) == attempt
        assert not remote.handle(event({"run_id": run_id, "history": [one]}))  # it came back: no more epochs
    finally:
        remote.close()
    assert not remote.handle(event({"run_id": run_id, "history": [one]}))
    assert store.live.get(attempt.id).history == [one, two]


def test_a_remote_training_outside_a_dask_worker_trains_without_events(store):
    resolved = store.resolve(tiny_config(epochs=1))
    run_id, payload, message, state = _train_remote(resolved.config.to_dict(), resolved.run_id, 1,
                                                    "mnistlab-sweep-nowhere")
    assert (run_id, message, state) == (resolved.run_id, "", "trained") and payload


# -- the command line ----------------------------------------------------------------------------
def test_the_sweep_command_prints_its_plan_and_refuses_bad_grids(tmp_path):
    env = {**os.environ, "MNISTLAB_MAX_TRAININGS": "1"}
    args = [sys.executable, "-m", "mnistlab", "sweep", "--data", "sample", "--arch", "mlp,cnn", "--epochs", "1",
            "--seeds", "2", "--jobs", "2", "--store", str(tmp_path / "runs")]
    dry = subprocess.run([*args, "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "4 runs: 0 stored, 4 to train" in dry.stdout and "MNISTLAB_MAX_TRAININGS=2" in dry.stdout
    as_json = subprocess.run([*args, "--dry-run", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=env)
    assert json.loads(as_json.stdout)["plan"]["to_train"] == 4
    bad = subprocess.run([*args, "--batch-size", "32,0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "mnistlab: error: batch_size must be an integer in [1, 60000], got 0"
    recipes = subprocess.run([sys.executable, "-m", "mnistlab", "recipes", "--data", "sample", "--store",
                              str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert recipes.returncode == 0, recipes.stderr
    assert "digits/deep_cnn" in recipes.stdout and "99.18" in recipes.stdout
    assert "published numbers are for full MNIST" in recipes.stdout
