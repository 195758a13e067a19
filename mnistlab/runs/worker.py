"""Training through the one queue: launches, worker processes, and training in the foreground.

Every training goes through the live state (:mod:`mnistlab.runs.live`): the app's and the
CLI's launches, and local sweeps, add attempts to one queue in one transaction, and a
worker *claims* an attempt only while fewer than ``MNISTLAB_MAX_TRAININGS`` (default: one
per two cores) are training. So launches over the cap wait their turn; they are never
refused, and the cap holds across processes.

- :func:`launch` queues configurations and starts a detached worker process
  (``python -m mnistlab.runs.worker``) that drains the queue and exits when it is empty. It
  calls no Streamlit API; pages follow it through the live state, so a rerun, a page switch
  or a browser reload changes nothing.
- :func:`obtain` (what ``RunStore.get_or_train`` and ``mnistlab train`` use) returns a stored
  run, or queues the configuration and trains it in this process when its turn comes, or
  waits for the process already training it.

A worker heartbeats every second from a thread; a worker that dies is noticed by the next
claim or reap (its heartbeat stale, its process gone) and its run is requeued. A cancel
addresses one attempt and stops it within one block of batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from mnistlab.errors import MnistlabError, StoreError
from mnistlab.runs.config import RunConfig
from mnistlab.runs.live import Attempt, Heartbeat
from mnistlab.runs.store import Obtained, Run, RunStore

#: The most often a training looks up a cancel request (a tiny query; blocks of batches can be ms).
CANCEL_POLL_SECONDS = 0.05
#: How long a worker with nothing to claim (all queued runs waiting for the cap) keeps polling.
IDLE_POLL_SECONDS = 0.5


def max_trainings(store: RunStore) -> int:
    """How many runs may train at once: ``MNISTLAB_MAX_TRAININGS``, else one per two cores."""
    if store.settings.max_trainings is not None:
        return store.settings.max_trainings
    return max(1, (os.cpu_count() or 2) // 2)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What any process can see of an attempt to train a run."""

    attempt: Attempt
    config: RunConfig

    @property
    def id(self) -> int:
        return self.attempt.id

    @property
    def run_id(self) -> str:
        return self.attempt.run_id

    @property
    def status(self) -> str:
        return self.attempt.state

    @property
    def is_active(self) -> bool:
        return self.attempt.is_active

    @property
    def epochs_total(self) -> int:
        return self.attempt.epochs_total

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.attempt.history

    @property
    def epochs_done(self) -> int:
        return len(self.attempt.history)

    @property
    def started(self) -> float:
        return self.attempt.started_at or self.attempt.queued_at

    @property
    def message(self) -> str:
        return self.attempt.message


def _progress(attempt: Attempt) -> Progress | None:
    try:
        return Progress(attempt, RunConfig.from_dict(attempt.config))
    except ValueError:
        return None


def in_progress(store: RunStore) -> list[Progress]:
    """Queued and training attempts in the order they will run, then recent problems, newest first."""
    if not store.root.is_dir():
        return []
    attempts = store.live.active() + store.live.recent()
    return [p for p in map(_progress, attempts) if p is not None]


def launch(store: RunStore, configs: Sequence[RunConfig], *, sweep: str | None = None) -> list[str]:
    """Queue ``configs`` (skipping stored or already queued ones) and start a worker for them.

    Returns the run ids queued. The worker's output goes to ``.tmp/worker-<token>.log``.
    ``sweep``: the runs (stored ones too) belong to that sweep (see :meth:`LiveState.add_to_sweep`).
    """
    created, wanted = _enqueue(store, configs, sweep)
    active = store.live.active()
    waiting = [a for a in active if a.state == "queued" and a.run_id in wanted]
    if created or waiting:  # also a run queued earlier whose worker died before it claimed it
        workers, threads = worker_plan(max_trainings(store), queued=sum(a.state == "queued" for a in active),
                                       training=sum(a.state == "training" for a in active))
        for _ in range(workers):
            start_worker(store, threads=threads)
    return created


def worker_plan(cap: int, *, queued: int, training: int, cores: int | None = None) -> tuple[int, int]:
    """How many workers to start for the queue, and each one's TensorFlow thread budget.

    As many workers as runs can start now (the cap minus those training, at most the queued
    ones, at least one), and the cores split between everything that will then train at once,
    so two queued runs on two cores train side by side with one thread each (1.2-1.3x the
    throughput of one after the other with two threads each) instead of oversubscribing them,
    while a run trained alone keeps every core.
    """
    cores = cores or os.cpu_count() or 1
    workers = max(1, min(cap - training, queued))
    together = max(1, min(cap, queued + training))
    return workers, max(1, cores // together)


def enqueue(store: RunStore, configs: Sequence[RunConfig], *, sweep: str | None = None) -> list[str]:
    """Queue ``configs`` like :func:`launch`, but start no worker (the caller drains the queue)."""
    return _enqueue(store, configs, sweep)[0]


def _enqueue(store: RunStore, configs: Sequence[RunConfig], sweep: str | None) -> tuple[list[str], set[str]]:
    store.settings.refuse_writes("Training")
    resolved = [store.resolve(config) for config in configs]
    for item in resolved:
        store.check_allowed(item)
    store._writable("Training")
    if sweep is not None:
        store.live.add_to_sweep(sweep, [r.run_id for r in resolved])
    created = store.live.launch(
        [(r.run_id, r.config.to_dict(), r.canonical_json, r.config.epochs) for r in resolved],
        is_stored=store.exists, sweep=sweep)
    return [attempt.run_id for attempt in created], {r.run_id for r in resolved}


_THREADS: int | None = None  # the thread budget this process was given (TensorFlow takes it once)


def thread_budget(threads: int) -> int:
    """Give this process's TensorFlow ``threads`` threads (intra-op; inter-op 1 for one thread).

    Must run before TensorFlow initialises in this process (its first op); later calls, or a
    process whose TensorFlow already runs, keep the first budget. Returns the budget in force.
    """
    global _THREADS
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if _THREADS is not None:
        return _THREADS
    inter = 1 if threads == 1 else 2
    for name, value in (("TF_NUM_INTRAOP_THREADS", threads), ("TF_NUM_INTEROP_THREADS", inter),
                        ("OMP_NUM_THREADS", threads)):
        os.environ[name] = str(value)
    from mnistlab.models.runtime import import_tensorflow

    tf = import_tensorflow()

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already initialised here: its threads are fixed
        _THREADS = tf.config.threading.get_intra_op_parallelism_threads() or threads
        return _THREADS
    _THREADS = threads
    return threads


def train_queued(store: RunStore, run_id: str, token: str, *, poll: float = IDLE_POLL_SECONDS,
                 should_stop: Callable[[], bool] | None = None) -> tuple[str, str]:
    """Train the queued run ``run_id`` here when the cap allows, or wait for whoever holds it.

    Returns ``(outcome, message)``: ``trained`` or ``diverged`` (trained here), ``cached`` (stored
    already, or by another process meanwhile), or how its attempt ended elsewhere
    (``cancelled``, ``failed``); ``missing`` when it is neither stored nor queued.
    """
    from mnistlab.models.training import Cancelled

    live = store.live
    while True:
        if store.exists(run_id):
            return "cached", ""
        attempt = live.claim(token, max_trainings(store), run_id=run_id)
        if attempt is not None:
            try:
                run = train_attempt(store, attempt, should_stop=should_stop)
            except Cancelled as exc:
                return "cancelled", str(exc)
            except Exception as exc:  # recorded in the live state by train_attempt
                return "failed", str(exc) if isinstance(exc, MnistlabError) else f"{type(exc).__name__}: {exc}"
            if run is None:
                return "failed", "no run was stored"
            return ("diverged" if run.status == "diverged" else "trained"), run.metrics.get("message", "")
        latest = live.latest(run_id)
        if latest is None or not latest.is_active:
            if store.exists(run_id):
                return "cached", ""
            return (latest.state if latest is not None else "missing"), (latest.message if latest else "")
        if should_stop is not None and should_stop():
            return "cancelled", "stopped waiting"
        time.sleep(poll)


def start_worker(store: RunStore, *, threads: int | None = None) -> None:
    """Start one detached worker process on ``store``'s queue (``threads``: its TensorFlow budget).

    The worker gets this store's cap (``MNISTLAB_MAX_TRAININGS``) even where it was set in code.
    """
    token = uuid.uuid4().hex
    logs = store.root / ".tmp"
    logs.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "mnistlab.runs.worker", "--store", str(store.root), "--token", token]
    if threads is not None:
        args += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                     os.environ.get("PYTHONPATH", "")]))}
    if store.settings.max_trainings is not None:
        env["MNISTLAB_MAX_TRAININGS"] = str(store.settings.max_trainings)
    try:
        with open(logs / f"worker-{token}.log", "w") as log:
            subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
    except OSError as exc:
        from mnistlab.errors import store_error

        raise store_error("starting a training worker", exc) from None


def train_attempt(store: RunStore, attempt: Attempt, *, dataset=None,
                  on_epoch: Callable[[dict, list], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> Run | None:
    """Train a claimed attempt and record how it ended. Returns the stored run, or None."""
    from mnistlab.models.training import Cancelled

    live = store.live
    try:
        resolved = store.resolve(RunConfig.from_dict(attempt.config), dataset)
        if resolved.run_id != attempt.run_id:
            raise MnistlabError("its data source changed since it was queued (another file or content)")
        existing = store.lookup(resolved.run_id)
        if existing is not None:
            live.finish(attempt.id, "finished", "already stored")
            return existing
        with Heartbeat(live, attempt.id) as beat:
            def epoch_done(record, history):
                live.record_epoch(attempt.id, history)
                if on_epoch is not None:
                    on_epoch(record, history)

            checked = [0.0]

            def stop() -> bool:  # called after every block of batches: a cancel stops the next block
                if beat.cancelled.is_set() or (should_stop is not None and should_stop()):
                    return True
                now = time.monotonic()
                if now - checked[0] < CANCEL_POLL_SECONDS:
                    return False
                checked[0] = now
                return live.cancel_requested(attempt.id)

            live.set_message(attempt.id, "loading data and building the model")
            run = store.train(resolved, dataset=dataset, on_epoch=epoch_done, should_stop=stop)
    except Cancelled:
        live.finish(attempt.id, "cancelled", "cancelled on request")
        raise
    except MnistlabError as exc:
        live.finish(attempt.id, "failed", str(exc))
        raise
    except Exception as exc:
        live.finish(attempt.id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    if run.status == "diverged":
        live.finish(attempt.id, "diverged", run.metrics["message"])
    else:
        live.finish(attempt.id, "finished", "")
    return run


def obtain(store: RunStore, config: RunConfig, *, dataset=None,
           on_epoch: Callable[[dict, list], None] | None = None,
           should_stop: Callable[[], bool] | None = None,
           on_wait: Callable[[Progress | None], None] | None = None) -> Obtained:
    """The stored run of ``config``; else queue it and train it here when its turn comes.

    If another process trains it, wait for that one and return its run (``cached=True``).
    Raises :class:`mnistlab.models.training.Cancelled` when ``should_stop`` says so.
    """
    from mnistlab.models.training import Cancelled

    resolved = store.resolve(config, dataset)
    run = store.lookup(resolved.run_id)
    if run is not None:
        return Obtained(run, cached=True)
    store.check_allowed(resolved)
    store._writable("Training")
    live = store.live
    token = f"fg-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    item = (resolved.run_id, resolved.config.to_dict(), resolved.canonical_json, resolved.config.epochs)
    live.launch([item], is_stored=store.exists)
    waited = False
    while True:
        run = store.lookup(resolved.run_id)
        if run is not None:
            return Obtained(run, cached=True)
        claimed = live.claim(token, max_trainings(store), run_id=resolved.run_id)
        if claimed is not None:
            run = train_attempt(store, claimed, dataset=dataset, on_epoch=on_epoch, should_stop=should_stop)
            return Obtained(run, cached=False)
        latest = live.latest(resolved.run_id)
        if latest is None or not latest.is_active:  # cancelled or failed elsewhere: queue it again
            live.launch([item], is_stored=store.exists)
        if should_stop is not None and should_stop():
            if latest is not None and latest.state == "queued":
                live.request_cancel(latest.id)
            raise Cancelled(f"stopped waiting for run {resolved.run_id}")
        if on_wait is not None:
            on_wait(_progress(latest) if latest is not None else None)
        waited = True
        time.sleep(0.5 if waited else 0.05)


def work(store: RunStore, token: str) -> int:
    """Drain the queue (the worker's main loop). Returns the number of failed runs."""
    from mnistlab.models.training import Cancelled

    failures = 0
    live = store.live
    while True:
        attempt = live.claim(token, max_trainings(store))
        if attempt is None:
            if not any(a.state == "queued" for a in live.active()):
                return failures
            time.sleep(IDLE_POLL_SECONDS)  # queued runs wait for a free slot under the cap
            continue
        try:
            run = train_attempt(store, attempt)
            print(f"{attempt.run_id}: {run.status if run else 'done'}", flush=True)
        except Cancelled as exc:
            print(f"{attempt.run_id}: {exc}", flush=True)
        except StoreError as exc:
            failures += 1
            print(f"{attempt.run_id}: failed: {exc}", flush=True)
        except Exception as exc:  # recorded in the live state; go on with the next
            failures += 1
            print(f"{attempt.run_id}: failed: {type(exc).__name__}: {exc}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.runs.worker")
    parser.add_argument("--store", required=True)
    parser.add_argument("--token", default=None, help="names this worker in the live state")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        thread_budget(args.threads)
    store = RunStore(args.store)
    return 1 if work(store, args.token or uuid.uuid4().hex) else 0


if __name__ == "__main__":
    sys.exit(main())
