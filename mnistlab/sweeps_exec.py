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
  so the app shows it; Dask retries a task whose worker died.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from typing import Any, Callable, Iterator

from mnistlab.errors import MnistlabError
from mnistlab.runs import worker
from mnistlab.runs.config import RunConfig
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
    """Threads per job so that ``jobs`` processes do not oversubscribe the cores: cores ÷ jobs."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


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
def _train_remote(config: dict[str, Any], run_id: str, threads: int) -> tuple[str, bytes | None, str]:
    """On a Dask worker: train ``config`` into a private temporary store, return its bundle bytes."""
    import shutil
    import tempfile

    from mnistlab.runs.bundles import export_bundle
    from mnistlab.settings import Settings

    folder = tempfile.mkdtemp(prefix="mnistlab-dask-")
    try:
        store = RunStore(folder, settings=Settings())
        resolved = store.resolve(RunConfig.from_dict(config))
        if resolved.run_id != run_id:
            return run_id, None, (f"this worker's data ({resolved.source.title}) is not the data the sweep was "
                                  f"planned on: give the worker the same file (MNISTLAB_MNIST) or use --data sample")
        worker.thread_budget(threads)
        run = store.train(resolved)
        return run_id, export_bundle(store, [run.run_id]), ""
    except MnistlabError as exc:
        return run_id, None, str(exc)
    except Exception as exc:  # a bug or the machine: reported for this run, the sweep goes on
        return run_id, None, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    so the app shows it training; its bundle is imported (full validation) when it comes back.
    Ctrl-C cancels the runs under way (their attempts) and re-raises.
    """
    import joblib

    live = store.live
    worker.enqueue(store, [run.config for run in plan.runs], sweep=plan.name)  # the app shows them queued
    planned: dict[str, PlannedRun] = {run.run_id: run for run in plan.to_train}
    claimed: dict[str, Any] = {}
    outcomes: list[Outcome] = []

    with dask_client(scheduler) as client:
        holder = f"dask:{client.scheduler.address}"

        def tasks():  # consumed lazily by joblib: a run is claimed when it is handed to the cluster
            for run in planned.values():
                attempt = live.claim(holder, None, run_id=run.run_id)
                if attempt is None:  # stored, cancelled, or taken by a local worker meanwhile: not sent
                    continue
                live.set_message(attempt.id, f"training on the Dask cluster at {client.scheduler.address}")
                claimed[run.run_id] = attempt
                yield joblib.delayed(_train_remote)(attempt.config, run.run_id, threads_per_job)

        def finish(run_id: str, payload: bytes | None, error: str) -> None:
            from mnistlab.runs.bundles import import_bundle

            attempt = claimed.pop(run_id)
            label = planned[run_id].config.label()
            if payload is None:
                live.finish(attempt.id, "failed", error)
                outcome = Outcome(run_id, label, "failed", message=error, where=holder)
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
            with joblib.parallel_config(backend="dask"):
                results = joblib.Parallel(n_jobs=-1, return_as="generator_unordered", batch_size=1,
                                          pre_dispatch="n_jobs")(tasks())
                for result in results:
                    finish(*result)
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt)
            reason = ("the sweep was stopped (Ctrl-C)" if stopped
                      else f"the Dask cluster gave up on it: {type(exc).__name__}: {exc}")
            if stopped:
                with contextlib.suppress(MnistlabError):
                    cancel_sweep(store, plan.name)
            for attempt in list(claimed.values()):
                with contextlib.suppress(MnistlabError, ValueError):
                    live.finish(attempt.id, "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed", reason)
            raise
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
