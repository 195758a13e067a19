"""The run store: finished runs on disk, one folder each, written atomically.

Layout under the store root (default ``cache/runs``; ``$MNISTLAB_STORE`` overrides)::

    <run_id>/config.json        the configuration and its canonical form
    <run_id>/history.json       one record per epoch (losses, accuracies, seconds)
    <run_id>/metrics.json       test loss/accuracy, best epoch, timings, versions, data source
    <run_id>/predictions.npz    test-set probabilities and labels (no pickle)
    <run_id>/first_layer.npz    first Conv2D kernels and biases (CNNs only)
    <run_id>/model.keras        the trained model (loaded with safe_mode=True)
    .progress/<run_id>.json     live progress of a run being trained (any process can read it)
    .progress/<run_id>.cancel   a cancel request for that run
    .locks/<run_id>.lock        held by the one process that trains that run
    .tmp/                       runs being written; renamed into place when whole

A reader sees a whole run or none. Two processes asking for the same configuration train
it once: the second waits on the first's lock and then finds the finished run. A process
killed mid-training releases its lock (the OS does), leaves no finished run, and the next
request trains again. Nothing here is unpickled, and TensorFlow is imported only to
train or to load a model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from filelock import FileLock, Timeout

from mnistlab.datasets.mnist import Dataset, SourceInfo, load_source, resolve_source
from mnistlab.datasets.tasks import get_task
from mnistlab.errors import BrokenRun
from mnistlab.models.architectures import count_params
from mnistlab.runs.config import RunConfig
from mnistlab.settings import Settings, load_settings

ENV_STORE = "MNISTLAB_STORE"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "cache" / "runs"
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
WORKER_START_GRACE_SECONDS = 30.0
REQUIRED_FILES = ("config.json", "history.json", "metrics.json", "predictions.npz")


def check_run_id(run_id: Any) -> str:
    """Return ``run_id`` if it is 16 lowercase hex digits, else raise ValueError."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise ValueError(f"run id must be 16 hexadecimal digits, got {str(run_id)[:40]!r}")
    return run_id


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1, allow_nan=False)
    os.replace(tmp, path)


def _clean(value: Any) -> Any:
    """NaN/inf -> None so JSON stays strict."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Predictions:
    probabilities: np.ndarray  # (N, units) as the model output them
    labels: np.ndarray  # task labels of the test set
    digits: np.ndarray  # digit labels of the test set


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A finished run as stored. Big parts (predictions, model) load on demand."""

    run_id: str
    path: Path
    config: RunConfig
    history: list[dict[str, Any]]
    metrics: dict[str, Any]

    @property
    def label(self) -> str:
        return self.config.label()

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)

    def predictions(self) -> Predictions:
        with np.load(self.path / "predictions.npz", allow_pickle=False) as npz:
            return Predictions(npz["probabilities"], npz["labels"], npz["digits"])

    @property
    def has_first_layer(self) -> bool:
        return (self.path / "first_layer.npz").is_file()

    def first_layer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """First Conv2D layer: kernels (k, k, 1, filters) and biases (filters,), or None."""
        path = self.path / "first_layer.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as npz:
            return npz["kernels"], npz["biases"]

    def load_model(self):
        """The trained Keras model (imports TensorFlow)."""
        import keras

        return keras.saving.load_model(self.path / "model.keras", safe_mode=True)

    def summary_row(self) -> dict[str, Any]:
        """One flat row for tables: configuration and key figures."""
        m = self.metrics
        c = self.config
        return {
            "run_id": self.run_id,
            "label": self.label,
            "task": c.task,
            "arch": c.arch,
            "epochs": c.epochs,
            "epochs_run": m.get("epochs_run"),
            "batch_size": c.batch_size,
            "optimizer": c.optimizer,
            "learning_rate": c.effective_learning_rate,
            "validation": c.validation,
            "train_size": m.get("split", {}).get("fit_images"),
            "patience": c.patience,
            "seed": c.seed,
            "test_accuracy": m.get("test_accuracy"),
            "test_loss": m.get("test_loss"),
            "best_val_accuracy": m.get("best_val_accuracy"),
            "best_epoch": m.get("best_epoch"),
            "final_loss": m.get("final_loss"),
            "final_val_loss": m.get("final_val_loss"),
            "train_seconds": m.get("timings", {}).get("fit_seconds"),
            "params": m.get("params"),
            "data": m.get("data", {}).get("kind"),
            "created": m.get("created"),
        }


@dataclasses.dataclass(frozen=True)
class Listing:
    runs: list[Run]
    broken: list[BrokenRun]


@dataclasses.dataclass(frozen=True)
class Progress:
    """What another process can see of a run in training."""

    run_id: str
    config: RunConfig
    status: str  # training, cancelled, failed, interrupted
    epochs_total: int
    history: list[dict[str, Any]]
    started: float
    updated: float
    message: str
    worker: str = ""  # the worker process (see mnistlab.runs.worker) that trains it, if any

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def is_active(self) -> bool:
        """Queued or training: a worker will still produce this run."""
        return self.status in ("queued", "training")


@dataclasses.dataclass(frozen=True)
class Obtained:
    run: Run
    cached: bool  # True: it was in the store (or another process finished it); no training here


def summarize_history(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Best validation epoch and final losses from a history."""
    out: dict[str, Any] = {"epochs_run": len(history)}
    if history:
        out["final_loss"] = history[-1].get("loss")
        out["final_val_loss"] = history[-1].get("val_loss")
        with_val = [h for h in history if h.get("val_accuracy") is not None]
        if with_val:
            best = max(with_val, key=lambda h: h["val_accuracy"])
            out["best_val_accuracy"] = best["val_accuracy"]
            out["best_epoch"] = best["epoch"]
    return out


class RunStore:
    """Finished runs and live progress under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None, settings: Settings | None = None):
        root = root if root is not None else (os.environ.get(ENV_STORE, "").strip() or DEFAULT_ROOT)
        self.root = Path(root).expanduser().resolve()
        self.settings = settings if settings is not None else load_settings()
        self.worker = ""  # set by a worker process (mnistlab.runs.worker) so its progress records name it

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def _progress_path(self, run_id: str) -> Path:
        return self.root / ".progress" / f"{check_run_id(run_id)}.json"

    def _cancel_path(self, run_id: str) -> Path:
        return self.root / ".progress" / f"{check_run_id(run_id)}.cancel"

    def _lock(self, run_id: str) -> FileLock:
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / ".locks" / f"{check_run_id(run_id)}.lock")

    # -- identity ------------------------------------------------------------------
    def resolve(self, config: RunConfig, dataset: Dataset | None = None) -> tuple[str, SourceInfo]:
        """The run id of ``config`` and the data source it resolves to."""
        info = dataset.source if dataset is not None else resolve_source(config.data)
        return config.run_id(info.fingerprint), info

    # -- reading -------------------------------------------------------------------
    def exists(self, run_id: str) -> bool:
        return (self.run_path(run_id) / "metrics.json").is_file()

    def load(self, run_id: str) -> Run:
        """Load a finished run; KeyError if absent, BrokenRun if unreadable."""
        path = self.run_path(run_id)
        if not path.is_dir():
            raise KeyError(f"no run {run_id} in {self.root}")
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise BrokenRun(run_id, f"missing {', '.join(missing)}")
        try:
            stored = _read_json(path / "config.json")
            config = RunConfig.from_dict(stored["config"])
            history = _read_json(path / "history.json")
            metrics = _read_json(path / "metrics.json")
            fingerprint = metrics["data"]["fingerprint"]
            schema = int(stored["canonical"]["schema"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BrokenRun(run_id, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise BrokenRun(run_id, "history.json is not a list of epoch records")
        if not isinstance(metrics, dict):
            raise BrokenRun(run_id, "metrics.json is not an object")
        if config.run_id(fingerprint, schema) != run_id:
            raise BrokenRun(run_id, "its configuration hashes to another run id")
        return Run(run_id, path, config, history, metrics)

    def lookup(self, run_id: str) -> Run | None:
        """The finished run, or None if there is none (a broken one raises BrokenRun)."""
        try:
            return self.load(run_id)
        except KeyError:
            return None

    def _run_dirs(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            yield entry

    def list_runs(self) -> Listing:
        """Every finished run, newest first; broken folders are reported, never raised."""
        runs: list[Run] = []
        broken: list[BrokenRun] = []
        for entry in self._run_dirs():
            if not RUN_ID_PATTERN.match(entry.name):
                broken.append(BrokenRun(entry.name, "folder name is not a run id"))
                continue
            try:
                runs.append(self.load(entry.name))
            except BrokenRun as exc:
                broken.append(exc)
        runs.sort(key=lambda r: r.metrics.get("created", ""), reverse=True)
        return Listing(runs, broken)

    def runs_frame(self, runs: list[Run] | None = None):
        """A pandas table of runs (one row each, see :meth:`Run.summary_row`)."""
        import pandas as pd

        runs = self.list_runs().runs if runs is None else runs
        rows = [run.summary_row() for run in runs]
        return pd.DataFrame(rows)

    # -- progress --------------------------------------------------------------------
    def _is_locked(self, run_id: str) -> bool:
        return self._is_locked_path(self.root / ".locks" / f"{check_run_id(run_id)}.lock")

    @staticmethod
    def _is_locked_path(path: Path) -> bool:
        if not path.exists():
            return False
        lock = FileLock(path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def progress(self, run_id: str) -> Progress | None:
        """Live progress of a run that is (or was) training, as any process sees it.

        ``status``: ``queued`` (a worker will train it), ``training``, ``cancelled``,
        ``failed``, or ``interrupted`` (its process died: the lock is free).
        """
        path = self._progress_path(run_id)
        try:
            record = _read_json(path)
            config = RunConfig.from_dict(record["config"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        status = record.get("status", "training")
        updated = float(record.get("updated", 0.0))
        if status == "training" and not self._is_locked(run_id):
            status = "interrupted"
        elif status == "queued":
            worker = str(record.get("worker", ""))
            starting = time.time() - updated < WORKER_START_GRACE_SECONDS
            if not starting and not (re.fullmatch(r"[0-9a-f]{32}", worker) and self._is_locked_path(
                    self.root / ".locks" / f"worker-{worker}.lock")):
                status = "interrupted"
        return Progress(
            run_id=run_id,
            config=config,
            status=status,
            epochs_total=int(record.get("epochs_total", config.epochs)),
            history=list(record.get("history", [])),
            started=float(record.get("started", 0.0)),
            updated=updated,
            message=str(record.get("message", "")),
            worker=str(record.get("worker", "")),
        )

    def in_progress(self) -> list[Progress]:
        """Runs with a progress record (training now, or cancelled/failed/interrupted)."""
        folder = self.root / ".progress"
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            if RUN_ID_PATTERN.match(path.stem) and not self.exists(path.stem):
                progress = self.progress(path.stem)
                if progress is not None:
                    found.append(progress)
        return sorted(found, key=lambda p: p.started, reverse=True)

    def request_cancel(self, run_id: str) -> None:
        """Ask the process training ``run_id`` to stop (it stops within one block of batches)."""
        self.settings.refuse_writes("Cancelling a run")
        path = self._cancel_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def dismiss(self, run_id: str) -> None:
        """Forget the progress record of a run that is not training any more."""
        self.settings.refuse_writes("Dismissing a run")
        if not self._is_locked(run_id):
            for path in (self._progress_path(run_id), self._cancel_path(run_id)):
                path.unlink(missing_ok=True)

    def worker_lock(self, token: str) -> FileLock:
        """The lock a worker process holds while it lives (see :mod:`mnistlab.runs.worker`)."""
        if not re.fullmatch(r"[0-9a-f]{32}", token):
            raise ValueError(f"worker token must be 32 hexadecimal digits, got {token[:40]!r}")
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / ".locks" / f"worker-{token}.lock")

    def mark_queued(self, run_id: str, config: RunConfig, worker: str) -> None:
        """Record that the worker ``worker`` will train this run."""
        self._write_progress(run_id, config, "queued", [], time.time(), "waiting for its turn", worker=worker)

    def mark_cancelled(self, run_id: str, config: RunConfig, message: str) -> None:
        self._write_progress(run_id, config, "cancelled", [], time.time(), message)

    def take_cancel_request(self, run_id: str) -> bool:
        """True (and the request is consumed) if a cancel was requested for ``run_id``."""
        path = self._cancel_path(run_id)
        if path.exists():
            path.unlink(missing_ok=True)
            return True
        return False

    def _write_progress(self, run_id: str, config: RunConfig, status: str, history, started: float,
                        message: str = "", worker: str | None = None) -> None:
        path = self._progress_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, _clean({
            "run_id": run_id,
            "config": config.to_dict(),
            "status": status,
            "epochs_total": config.epochs,
            "history": history,
            "started": started,
            "updated": time.time(),
            "pid": os.getpid(),
            "worker": self.worker if worker is None else worker,
            "message": message,
        }))

    # -- training ----------------------------------------------------------------------
    def get_or_train(
        self,
        config: RunConfig,
        *,
        dataset: Dataset | None = None,
        on_epoch: Callable[[dict, list], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_wait: Callable[[Progress | None], None] | None = None,
    ) -> Obtained:
        """Return the stored run for ``config``, training it first if needed.

        If another process is training the same run, wait for it (``on_wait`` is called
        about once a second with its progress) and return its result. If that process
        died or was cancelled, train here. Raises :class:`mnistlab.models.training.Cancelled`
        when ``should_stop`` or :meth:`request_cancel` stops the run.
        """
        run_id, info = self.resolve(config, dataset)
        run = self.lookup(run_id)
        if run is not None:
            return Obtained(run, cached=True)
        self.check_allowed(config, dataset or info)
        lock = self._lock(run_id)
        waited = False
        while True:
            try:
                lock.acquire(timeout=0 if not waited else 1.0)
                break
            except Timeout:
                waited = True
                if should_stop is not None and should_stop():
                    from mnistlab.models.training import Cancelled

                    raise Cancelled(f"stopped waiting for run {run_id}") from None
                if on_wait is not None:
                    on_wait(self.progress(run_id))
        try:
            run = self.lookup(run_id)
            if run is not None:
                return Obtained(run, cached=True)
            return Obtained(self._train_locked(run_id, info, config, dataset, on_epoch, should_stop), cached=False)
        finally:
            lock.release()

    def check_allowed(self, config: RunConfig, data: Dataset | SourceInfo) -> None:
        """Raise ReadOnlyError or LimitError if this instance may not train ``config``."""
        self.settings.refuse_writes("Training")
        if self.settings.max_train_size is not None and config.train_size is None:
            dataset = data if isinstance(data, Dataset) else load_source(data)
            from mnistlab.models.training import split_data

            self.settings.check_config(config, split_data(config, dataset).n_fit)
        else:
            self.settings.check_config(config)

    def _train_locked(self, run_id, info, config, dataset, on_epoch, should_stop) -> Run:
        from mnistlab.models.training import Cancelled, train

        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp(run_id)
        cancel_path = self._cancel_path(run_id)
        cancel_path.unlink(missing_ok=True)
        started = time.time()
        self._write_progress(run_id, config, "training", [], started, "loading data")

        def stop_requested() -> bool:  # checked after every batch: one stat() call
            return (should_stop is not None and should_stop()) or cancel_path.exists()

        seen: list[dict] = []

        def epoch_done(record, history):
            seen[:] = history
            self._write_progress(run_id, config, "training", history, started)
            if on_epoch is not None:
                on_epoch(record, history)

        try:
            data = dataset if dataset is not None else load_source(info)
            self._write_progress(run_id, config, "training", [], started, "building the model")
            result = train(config, data, on_epoch=epoch_done, should_stop=stop_requested)
        except Cancelled:
            self._write_progress(run_id, config, "cancelled", seen, started, "cancelled on request")
            cancel_path.unlink(missing_ok=True)
            raise
        except BaseException as exc:
            self._write_progress(run_id, config, "failed", seen, started, f"{type(exc).__name__}: {exc}")
            raise
        run = self._write_run(run_id, config, info, result)
        self._progress_path(run_id).unlink(missing_ok=True)
        cancel_path.unlink(missing_ok=True)
        return run

    def _remove_stale_tmp(self, run_id: str) -> None:
        tmp_root = self.root / ".tmp"
        if tmp_root.is_dir():
            for entry in tmp_root.glob(f"{run_id}-*"):
                shutil.rmtree(entry, ignore_errors=True)

    def _write_run(self, run_id: str, config: RunConfig, info: SourceInfo, result) -> Run:
        task = get_task(config.task)
        tmp = self.root / ".tmp" / f"{run_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            metrics = {
                "run_id": run_id,
                "test_loss": result.test_loss,
                "test_accuracy": result.test_accuracy,
                **summarize_history(result.history),
                "params": count_params(config.arch, config.task),
                "split": result.split,
                "timings": result.timings,
                "versions": result.versions,
                "data": {"kind": info.kind, "title": info.title, "fingerprint": info.fingerprint,
                         "reason": info.reason},
                "n_test": int(len(result.probabilities)),
                "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
            _write_json(tmp / "config.json", {"run_id": run_id, "config": config.to_dict(),
                                              "canonical": config.canonical(info.fingerprint)})
            _write_json(tmp / "history.json", _clean(result.history))
            labels = task.labels(result.test_digits)
            np.savez(tmp / "predictions.npz", probabilities=result.probabilities, labels=labels,
                     digits=np.asarray(result.test_digits, dtype=np.int64))
            if result.first_layer is not None:
                np.savez(tmp / "first_layer.npz", kernels=result.first_layer[0], biases=result.first_layer[1])
            result.model.save(tmp / "model.keras")
            _write_json(tmp / "metrics.json", _clean(metrics))  # last: marks the run as whole
            target = self.root / run_id
            if target.exists():  # only after a broken folder: replace it
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(run_id)

    # -- housekeeping --------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """Remove a finished (or broken) run folder."""
        self.settings.refuse_writes("Deleting a run")
        path = self.run_path(run_id)
        if not path.exists():
            raise KeyError(f"no run {run_id} in {self.root}")
        trash = self.root / ".tmp" / f"deleted-{run_id}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
