import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import pytest

from mnistlab.errors import MnistlabError, ReadOnlyError, StoreError
from mnistlab.runs import live as live_module
from mnistlab.runs.live import ACTIVE, TERMINAL, TRANSITIONS, Heartbeat, LiveState, NoSuchAttempt, TransitionError
from tests.conftest import ROOT


def item(name: str, epochs: int = 3) -> tuple[str, dict, str, int]:
    config = {"name": name, "epochs": epochs}
    return name, config, json.dumps(config, sort_keys=True), epochs


def wait_for(predicate, seconds: float = 15.0, step: float = 0.02):
    """The first true value of ``predicate()`` within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def live(tmp_path) -> LiveState:
    return LiveState(tmp_path / "store" / "live.sqlite3")


# -- the database ------------------------------------------------------------------------
def test_the_database_is_created_on_first_use_in_wal_mode_with_a_schema_version(tmp_path):
    path = tmp_path / "store" / "live.sqlite3"
    live = LiveState.for_store(tmp_path / "store")
    assert live.path == path and not path.parent.exists()
    assert live.active() == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (1,)


def test_the_database_allows_one_active_attempt_per_run_whatever_the_code_does(live):
    live.launch([item("a")])
    conn = sqlite3.connect(live.path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO attempts (run_id, config, canonical, state, queued_at, updated_at, epochs_total) "
                     "VALUES ('a', '{}', '{}', 'training', 0, 0, 1)")
    conn.close()


def test_a_database_from_a_newer_mnistlab_is_refused(live):
    live.active()
    with sqlite3.connect(live.path) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer mnistlab"):
        LiveState(live.path).active()


# -- launching --------------------------------------------------------------------------
def test_a_launch_skips_runs_that_are_stored_or_already_queued_and_keeps_the_order(live):
    live.launch([item("c")])
    created = live.launch([item("a"), item("b"), item("c"), item("a"), item("d")],
                          is_stored=lambda run_id: run_id == "b", sweep="grid-1")
    assert [a.run_id for a in created] == ["a", "d"]
    assert all(a.state == "queued" and a.sweep == "grid-1" and a.tries == 0 for a in created)
    assert created[0].config == {"name": "a", "epochs": 3} and created[0].canonical == item("a")[2]
    assert [a.run_id for a in live.active()] == ["c", "a", "d"]
    assert live.launch([item("a"), item("d")]) == []


def test_a_run_whose_attempt_ended_can_be_launched_again_as_a_new_attempt(live):
    (first,) = live.launch([item("a")])
    live.request_cancel(first.id)
    (second,) = live.launch([item("a")])
    assert second.id > first.id and live.latest("a") == second


def test_a_launch_is_one_transaction_so_a_failure_midway_queues_nothing(live):
    version = live.data_version()

    def is_stored(run_id):
        if run_id == "c":
            raise RuntimeError("the store cannot be read")
        return False

    with pytest.raises(RuntimeError):
        live.launch([item("a"), item("b"), item("c")], is_stored=is_stored)
    assert live.active() == [] and live.data_version() == version


def test_a_launch_item_of_the_wrong_shape_is_refused_with_its_field_named(live):
    with pytest.raises(ValueError, match="epochs_total of run a must be an integer >= 1, got 0"):
        live.launch([item("b"), ("a", {}, "{}", 0)])
    with pytest.raises(ValueError, match=r"\(run_id, config, canonical_json, epochs_total\)"):
        live.launch([("a", {})])
    assert live.active() == []


# -- claiming and the cap -----------------------------------------------------------------
def test_a_claim_takes_the_oldest_queued_attempt_and_records_its_worker(live):
    live.launch([item("a"), item("b")])
    attempt = live.claim("worker-1", cap=2)
    assert (attempt.run_id, attempt.state, attempt.worker, attempt.pid) == ("a", "training", "worker-1",
                                                                             os.getpid())
    assert attempt.host and attempt.started_at == attempt.heartbeat_at
    assert live.claim("worker-2", cap=2, run_id="b", pid=4321).pid == 4321


def test_over_the_cap_a_launch_waits_in_the_queue_instead_of_being_refused(live):
    live.launch([item("a"), item("b")])
    first = live.claim("w", cap=1)
    assert live.claim("w", cap=1) is None
    assert [(a.run_id, a.state) for a in live.active()] == [("a", "training"), ("b", "queued")]
    live.finish(first.id, "finished")
    assert live.claim("w", cap=1).run_id == "b"
    assert live.claim("w", cap=None) is None


def test_a_claim_for_a_run_takes_only_that_run(live):
    live.launch([item("a"), item("b")])
    assert live.claim("w", cap=5, run_id="b").run_id == "b"
    assert live.claim("w", cap=5, run_id="b") is None
    assert live.claim("w", cap=5, run_id="zzz") is None


_RACER = """
import json, sys, time
from pathlib import Path
from mnistlab.runs.live import LiveState

path, index = Path(sys.argv[1]), int(sys.argv[2])
live = LiveState(path)
(path.parent / f"ready-{index}").touch()
while not (path.parent / "go").exists():
    time.sleep(0.005)
live.launch([(f"run-{index}", {"index": index}, json.dumps({"index": index}), 1)])
while (attempt := live.claim(f"worker-{index}", cap=1)) is None:
    time.sleep(0.01)
most = 0
for _ in range(4):
    most = max(most, live.counts()["training"])
    time.sleep(0.02)
live.finish(attempt.id, "finished", f"by worker {index}")
print(json.dumps({"run_id": attempt.run_id, "most": most}))
"""


def test_the_cap_holds_when_eight_processes_launch_and_claim_at_once(tmp_path):
    path = tmp_path / "live.sqlite3"
    racers = [python(_RACER, str(path), str(index)) for index in range(8)]
    try:
        assert wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 8, seconds=60)
        (tmp_path / "go").touch()
        live = LiveState(path)
        most_seen_here = 0
        while any(racer.poll() is None for racer in racers):
            most_seen_here = max(most_seen_here, live.counts()["training"])
            time.sleep(0.005)
        outputs = [racer.communicate(timeout=30) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(r["run_id"] for r in reports) == sorted(f"run-{i}" for i in range(8))
    assert max(r["most"] for r in reports) == 1 and most_seen_here <= 1
    attempts = sorted((live.latest(f"run-{i}") for i in range(8)), key=lambda a: a.started_at)
    assert all(a.state == "finished" for a in attempts)
    for before, after in pairwise(attempts):
        assert after.started_at >= before.updated_at  # training intervals never overlap
    assert live.counts()["training"] == 0


def test_threads_of_one_process_each_use_their_own_connection(live):
    live.launch([item(f"run-{i}") for i in range(6)])

    def work(index):
        attempt = live.claim(f"thread-{index}", cap=None)
        live.record_epoch(attempt.id, [{"epoch": 1}])
        live.finish(attempt.id, "finished")
        live.close()
        return attempt.run_id

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(work, range(6)))
    assert sorted(done) == [f"run-{i}" for i in range(6)]
    assert live.active() == []


# -- dead workers -------------------------------------------------------------------------
_DOOMED = """
import sys, time
from mnistlab.runs.live import Heartbeat, LiveState

live = LiveState(sys.argv[1])
attempt = live.claim("doomed", cap=1)
with Heartbeat(live, attempt.id, interval=0.1):
    print(attempt.id, flush=True)
    time.sleep(120)
"""


def test_a_killed_worker_s_attempt_is_requeued_once_its_heartbeat_is_stale_and_claimed_again(live):
    (attempt,) = live.launch([item("a")])
    worker = python(_DOOMED, str(live.path))
    try:
        assert worker.stdout.readline().strip() == str(attempt.id), worker.stderr.read()
        assert live.get(attempt.id).pid == worker.pid
        assert live.reap(stale_after=0.0) == []  # its process lives, however old its heartbeat
        assert live.claim("rescuer", cap=1, stale_after=0.5) is None
        worker.send_signal(signal.SIGKILL)  # not waited for: a zombie counts as dead too
        started = time.monotonic()
        rescued = wait_for(lambda: live.claim("rescuer", cap=1, stale_after=0.5), seconds=20)
    finally:
        worker.kill()
        worker.wait()
    assert time.monotonic() - started >= 0.3
    assert (rescued.id, rescued.state, rescued.worker, rescued.tries) == (attempt.id, "training", "rescuer", 1)


def test_reap_requeues_a_dead_worker_s_attempt_until_it_died_max_tries_times(live):
    live.launch([item("a")])
    for died in (1, 2):
        live.claim("w", cap=1, pid=dead_pid())
        (reaped,) = live.reap(stale_after=0.0, max_tries=3)
        assert (reaped.state, reaped.tries, reaped.message) == ("queued", died, "its worker process died; requeued")
        assert reaped.worker is None and reaped.history == []
    live.claim("w", cap=1, pid=dead_pid())
    (reaped,) = live.reap(stale_after=0.0, max_tries=3)
    assert (reaped.state, reaped.message) == ("failed", "its worker process died 3 times")
    assert live.recent() == [reaped]


def test_a_dead_worker_s_attempt_with_a_cancel_request_is_cancelled_not_requeued(live):
    (attempt,) = live.launch([item("a")])
    live.claim("w", cap=1, pid=dead_pid())
    live.request_cancel(attempt.id)
    (reaped,) = live.reap(stale_after=0.0)
    assert reaped.state == "cancelled" and "before it stopped" in reaped.message


def test_an_attempt_held_on_another_host_is_reaped_on_its_heartbeat_alone_and_later(live, monkeypatch):
    (attempt,) = live.launch([item("a")])
    with monkeypatch.context() as patch:
        patch.setattr(live_module.socket, "gethostname", lambda: "elsewhere")
        claimed = live.claim("remote", cap=1, pid=os.getpid())
    assert claimed.host == "elsewhere"
    reaped = wait_for(lambda: live.reap(stale_after=0.05), seconds=10)
    assert time.time() - claimed.heartbeat_at >= 0.05 * live_module.REMOTE_STALE_FACTOR
    assert [(a.id, a.state) for a in reaped] == [(attempt.id, "queued")]


def test_an_interrupted_attempt_is_requeued_by_the_next_claim(live):
    (attempt,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.finish(attempt.id, "interrupted", "the worker was shut down")
    assert live.active() == [] and live.counts()["interrupted"] == 1
    again = live.claim("w2", cap=1)
    assert (again.id, again.state, again.tries) == (attempt.id, "training", 1)


def test_an_interrupted_attempt_of_a_run_launched_again_is_cancelled_quietly(live):
    (old,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.finish(old.id, "interrupted")
    (new,) = live.launch([item("a")])
    (reaped,) = live.reap()
    assert (reaped.id, reaped.state, reaped.dismissed) == (old.id, "cancelled", True)
    assert f"launched again as attempt {new.id}" in reaped.message
    assert live.recent() == [] and [a.id for a in live.active()] == [new.id]


# -- progress, cancel and the state machine ----------------------------------------------
def test_epochs_are_recorded_as_plain_numbers_with_a_message(live):
    (attempt,) = live.launch([item("a", epochs=5)])
    live.claim("w", cap=1)
    live.record_epoch(attempt.id, [{"epoch": 1, "loss": np.float32(0.5)}, {"epoch": 2, "loss": 0.25}], "epoch 2")
    got = live.get(attempt.id)
    assert got.history == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    assert (got.epochs_done, got.epochs_total, got.message) == (2, 5, "epoch 2")
    live.set_message(attempt.id, "evaluating")
    assert live.get(attempt.id).message == "evaluating"


def test_only_a_training_attempt_records_epochs(live):
    (attempt,) = live.launch([item("a")])
    with pytest.raises(TransitionError, match="is queued; only a training attempt records epochs"):
        live.record_epoch(attempt.id, [{"epoch": 1}])
    with pytest.raises(NoSuchAttempt, match="no attempt 999"):
        live.record_epoch(999, [])


def test_a_queued_attempt_is_cancelled_at_once(live):
    first, second = live.launch([item("a"), item("b")])
    live.request_cancel(second.id)
    cancelled = live.get(second.id)
    assert (cancelled.state, cancelled.message) == ("cancelled", "cancelled before it started")
    assert [a.id for a in live.active()] == [first.id]


def test_a_cancel_addresses_one_attempt_not_a_later_relaunch_of_its_run(live):
    (old,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.request_cancel(old.id)
    assert live.cancel_requested(old.id) and live.get(old.id).state == "training"
    live.finish(old.id, "cancelled", "cancelled on request")
    (new,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.request_cancel(old.id)
    assert not live.cancel_requested(new.id) and not live.heartbeat(new.id)
    assert live.get(new.id).state == "training" and live.get(old.id).state == "cancelled"


def test_cancelling_an_ended_or_unknown_attempt_does_nothing(live):
    (attempt,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.finish(attempt.id, "finished")
    version = live.data_version()
    live.request_cancel(attempt.id)
    live.request_cancel(12345)
    assert live.get(attempt.id).state == "finished" and live.data_version() == version


def test_finishing_a_finished_attempt_raises_an_error_naming_both_states(live):
    (attempt,) = live.launch([item("a")])
    live.claim("w", cap=1)
    live.finish(attempt.id, "finished")
    with pytest.raises(TransitionError, match=rf"attempt {attempt.id} is finished and cannot become finished "
                                              r"\(allowed from finished: none, finished is terminal\)") as error:
        live.finish(attempt.id, "finished")
    assert isinstance(error.value, MnistlabError) and isinstance(error.value, ValueError)


def test_a_queued_attempt_cannot_finish_and_unknown_states_are_named(live):
    (attempt,) = live.launch([item("a")])
    with pytest.raises(TransitionError, match="is queued and cannot become finished "
                                              r"\(allowed from queued: cancelled, training\)"):
        live.finish(attempt.id, "finished")
    with pytest.raises(TransitionError, match="state must be one of queued, training, .*got 'done'"):
        live.finish(attempt.id, "done")
    with pytest.raises(TransitionError, match="claim"):
        live.finish(attempt.id, "training")
    assert live.get(attempt.id).state == "queued"


def test_the_transition_table_is_the_documented_state_machine():
    assert ACTIVE == ("queued", "training") and set(TERMINAL) == {"finished", "cancelled", "failed", "diverged"}
    assert TRANSITIONS["queued"] == {"training", "cancelled"}
    assert TRANSITIONS["training"] == {"finished", "cancelled", "failed", "diverged", "queued", "interrupted"}
    assert TRANSITIONS["interrupted"] == {"queued", "failed", "cancelled"}
    assert all(next_state in TRANSITIONS for moves in TRANSITIONS.values() for next_state in moves)


# -- what pages read ----------------------------------------------------------------------
def test_active_lists_what_trains_then_the_queue_in_the_order_it_will_run(live):
    live.launch([item("a"), item("b"), item("c")])
    live.claim("w", cap=None, run_id="c")
    assert [(a.run_id, a.state) for a in live.active()] == [("c", "training"), ("a", "queued"), ("b", "queued")]
    assert all(a.is_active for a in live.active())


def test_recent_lists_attempts_that_ended_badly_newest_first_until_dismissed(live):
    attempts = live.launch([item(name) for name in "abcde"])
    for attempt, state in zip(attempts, ("finished", "failed", "diverged", "cancelled")):
        live.claim("w", cap=None, run_id=attempt.run_id)
        live.finish(attempt.id, state, f"it {state}")
    assert [a.run_id for a in live.recent()] == ["d", "c", "b"]
    assert [a.run_id for a in live.recent(limit=1)] == ["d"]
    assert live.counts() == {"queued": 1, "training": 0, "interrupted": 0, "cancelled": 1, "failed": 1,
                             "diverged": 1}
    live.dismiss(attempts[2].id)
    live.dismiss(4242)
    assert [a.run_id for a in live.recent()] == ["d", "b"] and live.counts()["diverged"] == 0
    with pytest.raises(TransitionError, match="only an attempt that has ended"):
        live.dismiss(attempts[4].id)


def test_cleanup_deletes_only_attempts_that_ended_long_enough_ago_and_ids_are_never_reused(live):
    attempts = live.launch([item("a"), item("b"), item("c")])
    live.claim("w", cap=None, run_id="a")
    live.finish(attempts[0].id, "finished")
    live.request_cancel(attempts[1].id)
    assert live.cleanup(older_than=3600) == 0
    assert live.cleanup(older_than=0) == 2
    assert live.get(attempts[0].id) is None and [a.run_id for a in live.active()] == ["c"]
    live.request_cancel(attempts[2].id)
    live.cleanup(older_than=0)
    (again,) = live.launch([item("a")])
    assert again.id > attempts[2].id


def test_data_version_grows_with_each_change_and_not_with_reads_or_heartbeats(live):
    versions = [live.data_version()]

    def changed():
        versions.append(live.data_version())
        return versions[-1] > versions[-2]

    first, second = live.launch([item("a"), item("b")])
    assert changed()
    attempt = live.claim("w", cap=1)
    assert changed()
    live.record_epoch(attempt.id, [{"epoch": 1}])
    assert changed()
    live.set_message(attempt.id, "epoch 1 done")
    assert changed()
    live.request_cancel(attempt.id)
    assert changed()
    live.finish(attempt.id, "cancelled")
    assert changed()
    live.dismiss(attempt.id)
    assert changed()
    live.request_cancel(second.id)
    assert changed()
    assert live.cleanup(older_than=0) == 2
    assert changed()
    live.launch([item("c")])
    assert changed()
    training = live.claim("w", cap=1)
    assert changed()
    for read in (live.active, live.recent, live.counts, lambda: live.get(first.id), lambda: live.latest("c"),
                 lambda: live.cancel_requested(training.id), lambda: live.heartbeat(training.id),
                 lambda: live.claim("w", cap=1), lambda: live.reap(stale_after=0.0)):
        read()
        assert not changed()


# -- read-only and faults of the disk -----------------------------------------------------
def test_read_only_on_a_missing_file_reads_empty_and_creates_nothing(tmp_path):
    live = LiveState(tmp_path / "store" / "live.sqlite3", read_only=True)
    assert (live.active(), live.recent(), live.get(1), live.latest("a")) == ([], [], None, None)
    assert live.counts() == dict.fromkeys(("queued", "training", "interrupted", "cancelled", "failed", "diverged"),
                                          0)
    assert live.data_version() == 0 and not live.cancel_requested(1)
    for write in (lambda: live.launch([item("a")]), lambda: live.claim("w", cap=1), lambda: live.heartbeat(1),
                  lambda: live.record_epoch(1, []), lambda: live.set_message(1, "x"),
                  lambda: live.finish(1, "failed"), lambda: live.request_cancel(1), lambda: live.dismiss(1),
                  lambda: live.reap(), lambda: live.cleanup()):
        with pytest.raises(ReadOnlyError, match="read-only"):
            write()
    assert list(tmp_path.iterdir()) == []


def test_read_only_sees_what_a_writer_wrote_after_it_was_opened(live):
    reader = LiveState(live.path, read_only=True)
    assert reader.active() == []
    (attempt,) = live.launch([item("a")])
    assert reader.active() == [attempt] and reader.data_version() == live.data_version()
    with pytest.raises(ReadOnlyError):
        reader.request_cancel(attempt.id)
    assert live.get(attempt.id).state == "queued"


def test_a_database_under_a_file_raises_a_store_error_naming_the_path(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    path = tmp_path / "afile" / "live.sqlite3"
    with pytest.raises(StoreError, match="not a folder") as error:
        LiveState(path).launch([item("a")])
    assert str(path) in str(error.value) and "queueing runs" in str(error.value)
    assert LiveState(path, read_only=True).active() == []


def test_a_file_that_is_not_a_database_raises_a_store_error_saying_to_move_it_aside(tmp_path):
    path = tmp_path / "live.sqlite3"
    path.write_text("this is not SQLite, " * 20)
    for live in (LiveState(path), LiveState(path, read_only=True)):
        with pytest.raises(StoreError, match="move it aside") as error:
            live.active()
        assert str(path) in str(error.value)


def test_a_full_disk_raises_a_store_error_saying_to_free_space(live, monkeypatch):
    live.launch([item("a")])
    connect = LiveState._connect

    def small_disk(self, target, uri=False):
        conn = connect(self, target, uri)
        conn.execute("PRAGMA max_page_count = 8")
        return conn

    monkeypatch.setattr(LiveState, "_connect", small_disk)
    full = LiveState(live.path)
    with pytest.raises(StoreError, match="the disk is full: free some space") as error:
        full.launch([("b", {"big": "x" * 200_000}, "{}", 1)])
    assert str(live.path) in str(error.value)
    assert [a.run_id for a in full.active()] == ["a"]


def test_a_writer_that_waits_too_long_for_the_database_raises_a_store_error(live):
    live.active()
    holder = sqlite3.connect(live.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="another process held the database for over 0.05 s"):
            LiveState(live.path, timeout=0.05).launch([item("a")])
        assert live.active() == []  # readers are not blocked by a writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# -- heartbeat ----------------------------------------------------------------------------
def test_a_heartbeat_keeps_the_attempt_fresh_and_sees_a_cancel_within_two_intervals(live):
    (attempt,) = live.launch([item("a")])
    claimed = live.claim("w", cap=1)
    with Heartbeat(live, attempt.id, interval=0.3) as beat:
        assert wait_for(lambda: live.get(attempt.id).heartbeat_at > claimed.heartbeat_at, seconds=5)
        assert not beat.cancelled.is_set()
        live.request_cancel(attempt.id)
        assert beat.cancelled.wait(timeout=2 * 0.3 + 0.3)
    assert not beat.alive and beat.failures == 0


def test_a_heartbeat_survives_a_database_locked_for_a_while(live):
    (attempt,) = live.launch([item("a")])
    live.claim("w", cap=1)
    holder = sqlite3.connect(live.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    impatient = LiveState(live.path, timeout=0.02)
    with Heartbeat(impatient, attempt.id, interval=0.05) as beat:
        assert wait_for(lambda: beat.failures >= 2, seconds=5)
        assert isinstance(beat.error, StoreError)
        holder.execute("ROLLBACK")
        holder.close()
        live.request_cancel(attempt.id)
        assert beat.cancelled.wait(timeout=5)
        assert beat.alive and beat.error is None
