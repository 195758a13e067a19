"""Running sweeps: plan against the store, then train through joblib, locally or on a Dask cluster.

The pure part (grids, expansion, plans, progress, recipes) is :mod:`mnistlab.sweeps`; this
module does the I/O around it.

- :func:`plan_sweep` resolves a sweep's configurations against their data, asks the store
  which are stored and times the rest from stored runs.
- :func:`launch_sweep` queues the runs for the app's background worker (what the Sweep page
  does): :func:`mnistlab.runs.worker.launch` with the sweep's name.
- :func:`run_local` queues them in the store's one queue and trains them with ``jobs``
  processes started by ``joblib.Parallel`` (loky), each with its own TensorFlow thread
  budget. Every run goes through the queue as a single launch does, so ``MNISTLAB_MAX_TRAININGS``
  holds and a run launched from the app at the same time trains once.
- :func:`run_dask` runs them on a Dask cluster through joblib's Dask backend. Workers need
  not share the store's disk: each trains into a private temporary store and sends the run
  back as the bytes of a run bundle, which is imported with the same checks as any bundle
  (a run already present is skipped, so none is stored twice). This process records each
  remote run in the live state (launch, claim by ``dask:<scheduler>``, its history, finish),
  so the app shows it; Dask retries a task whose worker died. Each epoch is reported live: the
  worker logs the history so far as a Dask event (``Worker.log_event``) on a topic private to
  the sweep, and this process, subscribed to it (``Client.subscribe_topic``), checks it and
  writes it into the live state from one thread of its own (:class:`_RemoteRuns`). A cancel
  requested in the live state (the app's button) is passed to the worker as a
  ``distributed.Event``, which the training polls about once a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
import uuid
from typing import Any, Callable, Iterator

from mnistlab.errors import MnistlabError
from mnistlab.runs import worker
from mnistlab.runs.config import MAX_EPOCHS, RunConfig
from mnistlab.runs.live import Attempt, LiveState
from mnistlab.runs.records import EPOCH_RECORD, List, RecordError, clean
from mnistlab.runs.store import RunStore
from mnistlab.sweeps import (
    FULL_DATA_NOTE,
    RECIPES,
    Plan,
    PlannedRun,
    Sample,
    Sweep,
    SweepProgress,
    expand,
    make_plan,
    progress,
    recipe_rows,
)

#: How often a Dask sweep whose worker processes died is tried again as a whole, at most.
LOCAL_ROUNDS = 3
#: Seconds between two looks for a cancel request of a remote run (on the worker, and here).
REMOTE_CANCEL_POLL_SECONDS = 1.0
#: Epoch events waiting to be written, at most; more are dropped (the next one carries the whole history).
EVENT_QUEUE_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one run of a sweep ended: ``trained``, ``cached``, ``diverged``, ``cancelled`` or ``failed``."""

    run_id: str
    label: str
    state: str
    test_accuracy: float | None = None
    seconds: float | None = None
    message: str = ""
    where: str = ""

    @property
    def stored(self) -> bool:
        return self.state in ("trained", "cached", "diverged")

    def line(self, index: int | None = None, total: int | None = None) -> str:
        head = f"[{index}/{total}] " if index is not None and total else ""
        figures = f"test acc {self.test_accuracy:.4f}" if self.test_accuracy is not None else ""
        took = f"{self.seconds:.1f}s" if self.seconds is not None else ""
        tail = f"  {self.message}" if self.message and not self.stored else ""
        return "  ".join(filter(None, [f"{head}{self.state:9}", self.run_id, self.label, figures, took,
                                       f"({self.where})" if self.where else ""])) + tail

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _outcome(store: RunStore, run_id: str, label: str, state: str, message: str = "", where: str = "") -> Outcome:
    run = store.lookup(run_id) if state in ("trained", "cached", "diverged") else None
    if run is None:
        return Outcome(run_id, label, state, message=message, where=where)
    return Outcome(run_id, label, state, run.metrics["test_accuracy"], run.metrics["timings"]["fit_seconds"],
                   message, where)


# -- planning ------------------------------------------------------------------------------
def samples(store: RunStore) -> list[Sample]:
    """Timings of the stored runs, for estimates."""
    out = []
    for run in store.list_runs().runs:
        m = run.metrics
        out.append(Sample(run.config.arch, run.config.batch_size, m["split"]["fit_images"], m["epochs_run"],
                          m["timings"]["fit_seconds"]))
    return out


def _fit_images(explicit: RunConfig) -> int:
    """How many images a resolved configuration fits on (as the training splits them)."""
    if explicit.validation == "fraction":
        return int(explicit.train_size * (1.0 - float(explicit.validation_size)))
    return int(explicit.train_size)


def plan_sweep(store: RunStore, sweep: Sweep, *, jobs: int = 1) -> Plan:
    """The sweep's plan: its runs (resolved against their data), which are stored, an estimate.

    Raises :class:`~mnistlab.errors.ConfigError` (or DataError) as RunConfig and the data source do.
    """
    items = []
    for config in expand(sweep):
        resolved = store.resolve(config)
        items.append((resolved.config, resolved.run_id, store.exists(resolved.run_id),
                      _fit_images(resolved.explicit)))
    cap = worker.max_trainings(store)
    return make_plan(sweep.name, items, samples(store) if store.root.is_dir() else [], jobs=jobs, cap=cap)


def default_threads(jobs: int) -> int:
    """Threads per job so that ``jobs`` processes do not oversubscribe the cores: cores ÷ jobs (the
    queue's own split, :func:`~mnistlab.runs.worker.worker_plan`, for ``jobs`` runs at once)."""
    jobs = max(1, jobs)
    return worker.worker_plan(jobs, queued=jobs, training=0)[1]


# -- the app's launch and the progress of a sweep ------------------------------------------
def launch_sweep(store: RunStore, plan: Plan) -> list[str]:
    """Queue the plan's runs for the app's background worker; returns the run ids queued."""
    return worker.launch(store, [run.config for run in plan.runs], sweep=plan.name)


def sweep_progress(store: RunStore, name: str) -> SweepProgress:
    """How far sweep ``name`` is ("17 of 40 done, 2 training, ETA 6 min"), from the live state."""
    run_ids = store.live.sweep_run_ids(name)
    attempts = store.live.sweep_attempts(name)
    stored = {run_id for run_id in run_ids if store.exists(run_id)}
    seconds = []
    for run_id in stored:
        attempt = attempts.get(run_id)
        if attempt is not None and attempt.history:  # trained for this sweep: its epochs time the rest
            seconds += [record.get("seconds", 0.0) for record in attempt.history]
    return progress(name, run_ids, stored, attempts, seconds)


def cancel_sweep(store: RunStore, name: str) -> int:
    """Cancel every queued or training attempt of the sweep; returns how many were asked to stop."""
    store.settings.refuse_writes("Cancelling a sweep")
    active = [a for a in store.live.sweep_attempts(name).values() if a.is_active]
    for attempt in active:
        store.live.request_cancel(attempt.id)
    return len(active)


def retry_failed(store: RunStore, name: str) -> list[str]:
    """Queue again the sweep's runs whose attempt was cancelled, failed or interrupted (app worker)."""
    attempts = store.live.sweep_attempts(name)
    configs = []
    for run_id, attempt in attempts.items():
        if not attempt.is_active and attempt.state not in ("finished", "diverged") and not store.exists(run_id):
            with contextlib.suppress(ValueError):
                configs.append(RunConfig.from_dict(attempt.config))
    return worker.launch(store, configs, sweep=name) if configs else []


def delete_sweep_runs(store: RunStore, name: str) -> list[str]:
    """Delete the sweep's stored runs (not those still queued or training); returns their ids."""
    store.settings.refuse_writes("Deleting runs")
    deleted = []
    for run_id in store.live.sweep_run_ids(name):
        if store.run_path(run_id).exists():
            store.delete(run_id)
            deleted.append(run_id)
    return deleted


# -- local: joblib (loky) ------------------------------------------------------------------
def _train_local(root: str, settings, run_id: str, threads: int) -> tuple[str, str, str, int]:
    """One run in a joblib worker process: claim it under the cap (or wait for its holder), train it."""
    worker.thread_budget(threads)
    store = RunStore(root, settings=settings)
    token = f"sweep-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    state, message = worker.train_queued(store, run_id, token)
    return run_id, state, message, os.getpid()


def run_local(store: RunStore, plan: Plan, *, jobs: int = 1, threads_per_job: int | None = None,
              on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Train the plan's missing runs through the store's queue with ``jobs`` joblib processes.

    ``jobs=1`` trains in this process. Returns one outcome per run to train, in the order
    they ended. Ctrl-C (KeyboardInterrupt) cancels the sweep's queued and training runs, then
    re-raises: running the sweep again trains only what is missing.
    """
    import joblib

    threads = threads_per_job or default_threads(jobs)
    labels = {run.run_id: run.config.label() for run in plan.runs}
    worker.enqueue(store, [run.config for run in plan.runs], sweep=plan.name)
    pending = [run.run_id for run in plan.to_train]
    outcomes: list[Outcome] = []

    def done(run_id: str, state: str, message: str, pid: int) -> None:
        outcome = _outcome(store, run_id, labels[run_id], state, message, where=f"pid {pid}")
        outcomes.append(outcome)
        if on_result is not None:
            on_result(outcome)

    try:
        if jobs == 1:
            worker.thread_budget(threads)
            token = f"sweep-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            for run_id in pending:
                done(run_id, *worker.train_queued(store, run_id, token), os.getpid())
            return outcomes
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        for _ in range(LOCAL_ROUNDS):  # a killed worker process breaks the pool: the rest goes again
            finished = {o.run_id for o in outcomes}
            todo = [run_id for run_id in pending if run_id not in finished]
            if not todo:
                break
            try:
                with joblib.parallel_config(backend="loky", inner_max_num_threads=threads):
                    results = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)(
                        joblib.delayed(_train_local)(str(store.root), store.settings, run_id, threads)
                        for run_id in todo)
                    for result in results:
                        done(*result)
            except TerminatedWorkerError:
                store.live.reap(stale_after=0.0)  # requeue the runs of the dead process now
                continue
        return outcomes
    except KeyboardInterrupt:
        cancel_sweep(store, plan.name)
        with contextlib.suppress(MnistlabError):
            store.live.reap(stale_after=0.0)
        raise


# -- a Dask cluster: joblib's Dask backend, runs sent back as bundles ----------------------
def _cancel_event_name(topic: str, run_id: str) -> str:
    """The name of the ``distributed.Event`` that asks the worker training ``run_id`` to stop."""
    return f"{topic}:cancel:{run_id}"


def _remote_hooks(topic: str | None, run_id: str) -> tuple[Callable | None, Callable[[], bool] | None]:
    """``(on_epoch, should_stop)`` for training ``run_id`` in a Dask task; ``(None, None)`` elsewhere.

    ``on_epoch`` logs the history so far as a Dask event on ``topic`` (``{"run_id", "history"}``);
    ``should_stop`` asks the scheduler, at most once a second, whether the run's cancel event is set.
    """
    try:
        from distributed import Event, get_worker

        dask_worker = get_worker() if topic else None
    except (ImportError, ValueError):  # no Dask here, or not in a Dask task (joblib's fallback)
        dask_worker = None
    if dask_worker is None:
        return None, None
    cancel = Event(_cancel_event_name(topic, run_id))
    last = [-REMOTE_CANCEL_POLL_SECONDS, False]  # when the scheduler was last asked, and its answer

    def on_epoch(record: dict, history: list) -> None:
        with contextlib.suppress(Exception):  # progress is a nicety: it never stops the training
            dask_worker.log_event(topic, {"run_id": run_id, "history": clean(history)})

    def should_stop() -> bool:  # called after every block of batches
        now = time.monotonic()
        if now - last[0] >= REMOTE_CANCEL_POLL_SECONDS:
            last[0] = now
            with contextlib.suppress(Exception):  # the scheduler is unreachable: train on
                last[1] = bool(cancel.is_set())
        return bool(last[1])

    return on_epoch, should_stop


def _train_remote(config: dict[str, Any], run_id: str, threads: int,
                  topic: str | None = None) -> tuple[str, bytes | None, str, str]:
    """On a Dask worker: train ``config`` into a private temporary store, return its bundle bytes.

    Returns ``(run_id, bundle or None, message, state)``, state ``trained``, ``failed`` or
    ``cancelled``. With ``topic``, in a Dask task, each epoch is reported on ``topic`` and the
    sweep can stop the training (see :func:`_remote_hooks`); elsewhere it simply trains.
    """
    import shutil
    import tempfile

    from mnistlab.models.training import Cancelled
    from mnistlab.runs.bundles import export_bundle
    from mnistlab.settings import Settings

    on_epoch, should_stop = _remote_hooks(topic, run_id)
    folder = tempfile.mkdtemp(prefix="mnistlab-dask-")
    try:
        store = RunStore(folder, settings=Settings())
        resolved = store.resolve(RunConfig.from_dict(config))
        if resolved.run_id != run_id:
            return run_id, None, (f"this worker's data ({resolved.source.title}) is not the data the sweep was "
                                  f"planned on: give the worker the same file (MNISTLAB_MNIST) or use --data sample"
                                  ), "failed"
        worker.thread_budget(threads)
        run = store.train(resolved, on_epoch=on_epoch, should_stop=should_stop)
        return run_id, export_bundle(store, [run.run_id]), "", "trained"
    except Cancelled:
        return run_id, None, "cancelled on request", "cancelled"
    except MnistlabError as exc:
        return run_id, None, str(exc), "failed"
    except Exception as exc:  # a bug or the machine: reported for this run, the sweep goes on
        return run_id, None, f"{type(exc).__name__}: {exc}", "failed"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_HISTORY = List(EPOCH_RECORD, MAX_EPOCHS)


def _epoch_event(event: Any, attempts: dict[str, Attempt]) -> tuple[str, list[dict[str, Any]]] | None:
    """``(run_id, history)`` of a Dask epoch event for one of ``attempts``, or None if it is not one.

    ``event`` comes from the network: ``(timestamp, {"run_id": …, "history": […]})`` (the
    scheduler adds ``"worker"``, its address) where the run id is one of ``attempts`` and the
    history holds at most that attempt's epochs, each a record as ``history.json`` keeps them
    (finite numbers), numbered 1, 2, 3, …
    """
    if not isinstance(event, (tuple, list)) or len(event) != 2:
        return None
    msg = event[1]
    if not isinstance(msg, dict) or not {"run_id", "history"} <= msg.keys() <= {"run_id", "history", "worker"}:
        return None
    run_id, history = msg["run_id"], msg["history"]
    attempt = attempts.get(run_id) if isinstance(run_id, str) else None
    if attempt is None or not isinstance(history, (list, tuple)) or not 0 < len(history) <= attempt.epochs_total:
        return None
    try:
        history = _HISTORY(list(history), "history")  # msgpack gives the list back as a tuple
    except RecordError:
        return None
    if [record["epoch"] for record in history] != list(range(1, len(history) + 1)):
        return None
    return run_id, history


class _RemoteRuns:
    """The runs of one Dask sweep under way: their claimed attempts, their live epochs, their cancels.

    :meth:`handle` is the handler of the sweep's event topic; Dask calls it on the client's
    event loop, so it only checks the event and queues it. One thread of this object writes
    the queued histories into the live state (its own SQLite connection, as
    :class:`~mnistlab.runs.live.LiveState` keeps one per thread) and, about once a second,
    sets the cancel event of each run whose attempt a person cancelled. A run given back by
    :meth:`release` (it came back) gets no more epochs: a write under way ends first, a later one
    is dropped. The event loop only ever waits for ``_lock``, which no I/O holds.
    """

    def __init__(self, live: LiveState, topic: str, message: str, client: Any = None):
        self.live, self.topic, self.message, self.client = live, topic, message, client
        self._attempts: dict[str, Attempt] = {}
        self._cancelled: set[str] = set()
        self._stopping = False
        self._lock = threading.Lock()  # the attempts and _closed; held briefly, never across I/O
        self._writing = threading.Lock()  # held across a write into the live state
        self._queue: queue.Queue = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"mnistlab-{topic}", daemon=True)

    def add(self, run_id: str, attempt: Attempt) -> None:
        with self._lock:
            self._attempts[run_id] = attempt

    def release(self, run_id: str) -> Attempt:
        """The attempt of a run that came back; its epochs are no longer written."""
        with self._writing, self._lock:
            return self._attempts.pop(run_id)

    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts.values())

    def handle(self, event: Any) -> bool:
        """Queue a valid epoch event of a run under way; ignore anything else. Never raises."""
        try:
            with self._lock:
                found = None if self._closed else _epoch_event(event, self._attempts)
            if found is None:
                return False
            self._queue.put_nowait(found)
            return True
        except Exception:  # noqa: BLE001 -- network input on Dask's event loop: nothing may escape
            return False

    def start(self) -> None:
        self._thread.start()

    def stop_all(self) -> None:
        """Ask every run under way to stop on its worker (Ctrl-C): set each one's cancel event.
        A Dask future that is let go does not stop the thread running it; the event does, within
        about a second (the training polls it). :meth:`close` waits that long before clearing."""
        if self.client is None:
            return
        with self._lock:
            running = [run_id for run_id in self._attempts if run_id not in self._cancelled]
        for run_id in running:
            self._stopping |= self._cancel(run_id)

    def _cancel(self, run_id: str) -> bool:
        """Set ``run_id``'s cancel event; False if the cluster could not be reached (try again later)."""
        from distributed import Event

        try:
            Event(_cancel_event_name(self.topic, run_id), client=self.client).set()
        except Exception:  # noqa: BLE001 -- the cluster is unreachable
            return False
        self._cancelled.add(run_id)
        return True

    def close(self) -> None:
        """Stop writing; clear the cancel events set for this sweep (the scheduler forgets them)."""
        with self._lock:
            self._closed = True
            self._attempts.clear()
        if self._stopping:  # let the trainings see their events before they are cleared
            time.sleep(2 * REMOTE_CANCEL_POLL_SECONDS + 0.5)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=5)
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        if self.client is not None and self._cancelled:
            from distributed import Event

            for run_id in self._cancelled:
                with contextlib.suppress(Exception):  # the cluster may be gone; an event is tiny
                    Event(_cancel_event_name(self.topic, run_id), client=self.client).clear()

    def _run(self) -> None:
        looked = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=REMOTE_CANCEL_POLL_SECONDS)
                except queue.Empty:
                    item = ()
                if item is None:
                    return
                if item:
                    self._write(*item)
                if time.monotonic() - looked >= REMOTE_CANCEL_POLL_SECONDS:
                    looked = time.monotonic()
                    self._pass_cancels()
        finally:
            self.live.close()

    def _write(self, run_id: str, history: list[dict[str, Any]]) -> None:
        with self._writing:
            with self._lock:
                attempt = None if self._closed else self._attempts.get(run_id)
            if attempt is None:
                return
            with contextlib.suppress(MnistlabError):  # cancelled or ended meanwhile, or the disk: skip
                self.live.record_epoch(attempt.id, history, self.message)

    def _pass_cancels(self) -> None:
        if self.client is None:
            return
        with self._lock:
            waiting = [(run_id, a.id) for run_id, a in self._attempts.items() if run_id not in self._cancelled]
        for run_id, attempt_id in waiting:
            try:
                if not self.live.cancel_requested(attempt_id):
                    continue
            except MnistlabError:  # the disk: look again next time
                continue
            self._cancel(run_id)  # the cluster unreachable: tried again next time


@contextlib.contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler`` (an address like ``tcp://host:8786``, or a Client)."""
    from dask.distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    client = Client(scheduler, timeout="20s")
    try:
        yield client
    finally:
        client.close()


def run_dask(store: RunStore, plan: Plan, scheduler: Any, *, threads_per_job: int = 1,
             on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Train the plan's missing runs on a Dask cluster (``scheduler``: an address or a Client).

    Each run is launched and claimed in the live state when joblib hands it to the cluster,
    so the app shows it training; its epochs arrive live as Dask events (see
    :class:`_RemoteRuns`); its bundle is imported (full validation) when it comes back. A
    cancel requested for its attempt stops it on the worker (it ends ``cancelled``).
    Ctrl-C stops the runs under way on their workers (their cancel events; within about a
    second), marks their attempts cancelled and re-raises.
    """
    import joblib

    live = store.live
    worker.enqueue(store, [run.config for run in plan.runs], sweep=plan.name)  # the app shows them queued
    planned: dict[str, PlannedRun] = {run.run_id: run for run in plan.to_train}
    outcomes: list[Outcome] = []

    with dask_client(scheduler) as client:
        holder = f"dask:{client.scheduler.address}"
        where = f"training on the Dask cluster at {client.scheduler.address}"
        topic = f"mnistlab-sweep-{uuid.uuid4().hex}"  # this call's own: two sweeps on one cluster never mix
        remote = _RemoteRuns(live, topic, where, client)

        def tasks():  # consumed lazily by joblib: a run is claimed when it is handed to the cluster
            for run in planned.values():
                attempt = live.claim(holder, None, run_id=run.run_id)
                if attempt is None:  # stored, cancelled, or taken by a local worker meanwhile: not sent
                    continue
                live.set_message(attempt.id, where)
                remote.add(run.run_id, attempt)
                yield joblib.delayed(_train_remote)(attempt.config, run.run_id, threads_per_job, topic)

        def finish(run_id: str, payload: bytes | None, error: str, ended: str) -> None:
            from mnistlab.runs.bundles import import_bundle

            attempt = remote.release(run_id)  # no live epoch is written for it from here on
            label = planned[run_id].config.label()
            if payload is None:
                state = "cancelled" if ended == "cancelled" else "failed"
                live.finish(attempt.id, state, error)
                outcome = Outcome(run_id, label, state, message=error, where=holder)
            else:
                try:
                    imported, _present = import_bundle(store, payload)
                    run = store.load(run_id)
                except (MnistlabError, KeyError) as exc:
                    live.finish(attempt.id, "failed", f"its bundle was refused: {exc}")
                    outcome = Outcome(run_id, label, "failed", message=str(exc), where=holder)
                else:
                    live.record_epoch(attempt.id, run.history, "imported from the Dask cluster")
                    live.finish(attempt.id, run.status, run.metrics.get("message", ""))
                    state = ("diverged" if run.status == "diverged" else "trained") if imported else "cached"
                    outcome = _outcome(store, run_id, label, state, where=holder)
            outcomes.append(outcome)
            if on_result is not None:
                on_result(outcome)

        try:
            remote.start()
            client.subscribe_topic(topic, remote.handle)
            # One task per worker thread of the cluster under way. At least 2 jobs: joblib runs
            # n_jobs=1 in this process, which would bypass a cluster of one single-thread worker.
            slots = max(1, sum(client.nthreads().values()))
            with joblib.parallel_config(backend="dask"):
                results = joblib.Parallel(n_jobs=max(2, slots), return_as="generator_unordered", batch_size=1,
                                          pre_dispatch=str(slots))(tasks())
                for result in results:
                    finish(*result)
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt)
            reason = ("the sweep was stopped (Ctrl-C)" if stopped
                      else f"the Dask cluster gave up on it: {type(exc).__name__}: {exc}")
            if stopped:
                remote.stop_all()
                with contextlib.suppress(MnistlabError):
                    cancel_sweep(store, plan.name)
            for attempt in remote.attempts():
                with contextlib.suppress(MnistlabError, ValueError):
                    live.finish(attempt.id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed", reason)
            raise
        finally:
            with contextlib.suppress(Exception):  # a client that lost its scheduler cannot say so
                client.unsubscribe_topic(topic)
            remote.close()
    for run in planned.values():  # taken by a local worker when it was its turn: it ends there
        if run.run_id not in {o.run_id for o in outcomes}:
            state, message = worker.train_queued(store, run.run_id, f"wait-{os.getpid()}")
            outcome = _outcome(store, run.run_id, run.config.label(), state, message)
            outcomes.append(outcome)
            if on_result is not None:
                on_result(outcome)
    return outcomes


# -- the recipes table ---------------------------------------------------------------------
def recipes_report(store: RunStore, data: str = "auto") -> dict[str, Any]:
    """Each recipe's published test accuracy beside the stored runs of it (any seed) on ``data``."""
    from mnistlab.runs.config import resolve

    by_form: dict[str, list[float]] = {}
    listing = store.list_runs().runs if store.root.is_dir() else []
    for run in listing:
        if run.is_finished:
            form = {k: v for k, v in run.canonical.items() if k != "seed"}
            by_form.setdefault(_key(form), []).append(run.metrics["test_accuracy"])
    accuracies, missing = {}, []
    source = None
    for recipe in RECIPES:
        resolved = resolve(recipe.config(data=data))
        source = resolved.source
        accuracies[recipe.key] = by_form.get(_key({k: v for k, v in resolved.canonical.items() if k != "seed"}), [])
        if not accuracies[recipe.key]:
            missing.append(recipe.key)
    rows = recipe_rows(accuracies)
    note = FULL_DATA_NOTE if source is not None and (source.kind == "sample" or (source.n_train or 0) < 60_000) else ""
    return {"rows": rows, "missing": missing, "data": source.title if source else "", "note": note}


def _key(form: dict[str, Any]) -> str:
    import json

    return json.dumps(form, sort_keys=True)


__all__ = ["Outcome", "cancel_sweep", "dask_client", "default_threads", "delete_sweep_runs",
           "launch_sweep", "plan_sweep", "recipes_report", "retry_failed", "run_dask", "run_local",
           "sweep_progress"]
