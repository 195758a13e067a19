"""The run store: finished runs on disk, one folder each, written atomically.

Layout under the store root (default: ``cache/runs`` in a checkout, else ``~/.local/share/mnistlab/runs``, see
:func:`default_root`; ``$MNISTLAB_STORE`` overrides)::

    store.json              {"format": 3}: the version of the layout below
    <run_id>/               one finished (or diverged) run: see mnistlab.runs.records
    live.sqlite3            live state: queue, attempts, progress, cancels (mnistlab.runs.live)
    .tmp/                   runs being written, imports being checked; renamed into place when whole
    .duplicates/            runs that a migration found to be the same training as another (doctor)

A reader sees a whole run or none: a run is written to ``.tmp/`` and renamed into place. A
run's folder name is its id, and every file in it carries that id; reading never recomputes
ids (the stored canonical form is what was hashed). Broken folders are listed with a reason
and never raised into a listing. Nothing here unpickles anything, and TensorFlow is imported
only to train a model or to build one from stored weights.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mnistlab.datasets.mnist import Dataset, SourceInfo, load_source
from mnistlab.datasets.tasks import get_task
from mnistlab.errors import BrokenRun, StoreError, store_error
from mnistlab.models.architectures import count_params
from mnistlab.runs import records
from mnistlab.runs.config import Resolved, RunConfig, resolve
from mnistlab.runs.records import RUN_ID, Predictions, RecordError, RunFiles  # noqa: F401  (re-exported)
from mnistlab.settings import Settings, load_settings

ENV_STORE = "MNISTLAB_STORE"


def default_root() -> Path:
    """Where runs live unless ``$MNISTLAB_STORE`` or ``root`` says otherwise.

    In a checkout (the library next to ``streamlit_app.py`` and ``pyproject.toml``):
    ``<checkout>/cache/runs``. Installed (``pip install .``): a per-user data folder,
    ``$XDG_DATA_HOME/mnistlab/runs``, by default ``~/.local/share/mnistlab/runs``.
    """
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "streamlit_app.py").is_file() and (checkout / "pyproject.toml").is_file():
        return checkout / "cache" / "runs"
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "mnistlab" / "runs"


DEFAULT_ROOT = default_root()
STORE_FILE = "store.json"
#: Temporary entries older than this are leftovers of a killed process, removed on start.
STALE_TMP_SECONDS = 3600.0


def check_run_id(run_id: Any) -> str:
    """Return ``run_id`` if it is 16 lowercase hex digits, else raise ValueError."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        from mnistlab.errors import ConfigError

        raise ConfigError(f"run id must be 16 hexadecimal digits, got {str(run_id)[:40]!r}")
    return run_id


@dataclasses.dataclass(frozen=True, eq=False)
class Run(RunFiles):
    """A stored run: its checked JSON files and its folder; its arrays load (and are checked) on demand."""

    path: Path

    @classmethod
    def from_files(cls, path: Path, files: RunFiles) -> "Run":
        return cls(**{field.name: getattr(files, field.name) for field in dataclasses.fields(RunFiles)}, path=path)

    @property
    def label(self) -> str:
        return self.config.label()

    @property
    def status(self) -> str:
        """``finished`` or ``diverged`` (a loss became NaN or infinite: history only)."""
        return self.metrics["status"]

    @property
    def is_finished(self) -> bool:
        return self.status == "finished"

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights the run keeps (and its test metrics describe)."""
        return self.metrics["kept_epoch"]

    @property
    def kept_record(self) -> dict[str, Any] | None:
        return self.history[self.kept_epoch - 1] if self.kept_epoch else None

    def kept_description(self) -> str:
        """Which model the numbers describe, in words."""
        if not self.is_finished:
            return f"diverged after {len(self.history)} epoch{'' if len(self.history) == 1 else 's'}: {self.metrics['message']}"
        if self.metrics["kept_reason"] == "best_val_loss":
            return (f"the weights of epoch {self.kept_epoch} of {len(self.history)} "
                    "(lowest validation loss, restored by early stopping)")
        return f"the weights after the last epoch ({self.kept_epoch})"

    def history_frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)

    def _need_finished(self, what: str) -> None:
        if not self.is_finished:
            raise BrokenRun(self.run_id, f"it diverged, so it has no {what}")

    @functools.cached_property
    def _predictions(self) -> Predictions:
        self._need_finished("test predictions")
        try:
            return records.read_predictions(self.path, self.run_id, self.config.task, self.metrics["n_test"])
        except RecordError as exc:
            raise BrokenRun(self.run_id, str(exc)) from None
        except OSError as exc:
            raise BrokenRun(self.run_id, f"predictions.npz cannot be read ({exc.strerror or exc})") from None

    def predictions(self) -> Predictions:
        """The kept model's test-set predictions (checked; BrokenRun if they fail)."""
        return self._predictions

    def weights(self) -> list[np.ndarray]:
        """The kept model's weights in Keras' order (checked; BrokenRun if they fail)."""
        self._need_finished("weights")
        try:
            return records.read_weights(self.path, self.run_id, self.config.arch, self.config.task)
        except RecordError as exc:
            raise BrokenRun(self.run_id, str(exc)) from None
        except OSError as exc:
            raise BrokenRun(self.run_id, f"weights.npz cannot be read ({exc.strerror or exc})") from None

    @functools.cached_property
    def _epochs(self) -> records.Epochs | None:
        self._need_finished("per-epoch answers")
        try:
            return records.read_epochs(self.path, self.run_id, self.config.task, self.metrics["n_test"],
                                       self.metrics["epochs_run"])
        except RecordError as exc:
            raise BrokenRun(self.run_id, str(exc)) from None
        except OSError as exc:
            raise BrokenRun(self.run_id, f"epochs.npz cannot be read ({exc.strerror or exc})") from None

    def epochs(self) -> records.Epochs | None:
        """The test-set answers after every epoch (checked; BrokenRun if they fail), or None for a run
        stored without them. Row ``e`` is the model at the end of epoch ``e + 1``."""
        return self._epochs

    def disk_bytes(self) -> int:
        """The bytes the run's files take on disk (0 for a file that went away meanwhile)."""
        try:
            entries = list(os.scandir(self.path))
        except OSError:  # deleted meanwhile
            return 0
        total = 0
        for entry in entries:
            try:
                total += entry.stat().st_size
            except OSError:
                pass
        return total

    @property
    def has_epochs(self) -> bool:
        return self.is_finished and (self.path / "epochs.npz").is_file()

    @property
    def has_first_layer(self) -> bool:
        from mnistlab.models.architectures import get_architecture

        return self.is_finished and get_architecture(self.config.arch).is_convolutional

    def first_layer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """First Conv2D layer: kernels (k, k, 1, filters) and biases (filters,), or None."""
        if not self.has_first_layer:
            return None
        kernels, biases = self.weights()[:2]
        return kernels, biases

    def build_model(self):
        """The kept model as a Keras model, rebuilt from the architecture (imports TensorFlow)."""
        from mnistlab.models.architectures import build_model

        model = build_model(self.config.arch, self.config.task)
        model.set_weights(self.weights())
        return model

    def keras_file(self) -> bytes:
        """The kept model as a ``.keras`` file, built on demand (imports TensorFlow)."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{self.run_id}.keras"
            self.build_model().save(path)
            return path.read_bytes()

    def summary_row(self) -> dict[str, Any]:
        """One flat row for tables: configuration and the kept model's figures."""
        m = self.metrics
        c = self.config
        kept = self.kept_record or {}
        return {
            "run_id": self.run_id,
            "label": self.label,
            "status": self.status,
            "task": c.task,
            "arch": c.arch,
            "epochs": c.epochs,
            "epochs_run": m["epochs_run"],
            "batch_size": c.batch_size,
            "optimizer": c.optimizer,
            "learning_rate": c.effective_learning_rate,
            "validation": c.validation,
            "train_size": m["split"]["fit_images"],
            "patience": c.patience,
            "seed": c.seed,
            "precision": c.precision,
            "test_accuracy": m["test_accuracy"],
            "test_loss": m["test_loss"],
            "kept_epoch": m["kept_epoch"],
            "val_accuracy": kept.get("val_accuracy"),
            "val_loss": kept.get("val_loss"),
            "loss": kept.get("loss"),
            "train_seconds": m["timings"]["fit_seconds"],
            "params": m["params"],
            "data": m["data"]["kind"],
            "created": m["created"],
        }


@dataclasses.dataclass(frozen=True)
class Listing:
    runs: list[Run]
    broken: list[BrokenRun]

    def aliases(self) -> dict[str, str]:
        """Old run ids (from before a migration) -> today's ids."""
        return {alias: run.run_id for run in self.runs for alias in run.aliases}


@dataclasses.dataclass(frozen=True)
class Obtained:
    run: Run
    cached: bool  # True: it was in the store (or another process finished it); no training here


@dataclasses.dataclass
class DoctorReport:
    """What :meth:`RunStore.doctor` found, and (with repair) did."""

    runs: int = 0
    broken: list[BrokenRun] = dataclasses.field(default_factory=list)
    migrated: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (old id, new id)
    duplicates: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (run id, set-aside folder)
    leftovers: list[str] = dataclasses.field(default_factory=list)
    live: dict[str, int] = dataclasses.field(default_factory=dict)
    repaired: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.broken and not self.leftovers

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "broken": [{"run_id": b.run_id, "reason": b.reason} for b in self.broken],
            "migrated": [{"from": a, "to": b} for a, b in self.migrated],
            "duplicates": [{"run_id": a, "set_aside_in": b} for a, b in self.duplicates],
            "leftovers": self.leftovers,
            "live": self.live,
            "repaired": self.repaired,
            "notes": self.notes,
        }


class RunStore:
    """Finished runs under one root folder, and the live state of the ones in training."""

    def __init__(self, root: str | os.PathLike | None = None, settings: Settings | None = None):
        root = root if root is not None else (os.environ.get(ENV_STORE, "").strip() or default_root())
        self.root = Path(root).expanduser().resolve()
        self.settings = settings if settings is not None else load_settings()
        self._cache: dict[str, tuple[tuple, Run | BrokenRun]] = {}
        self._checked = False
        self._live = None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -- paths and state -------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def _check_root(self) -> bool:
        """False if there is no store yet; StoreError if the path is not a usable folder."""
        if self.root.is_dir():
            return True
        if self.root.exists():
            raise StoreError(f"the store path {self.root} is a file, not a folder: point MNISTLAB_STORE (or "
                             "--store) at a folder")
        return False

    def _writable(self, action: str) -> None:
        self.settings.refuse_writes(action)
        try:
            if self.root.exists() and not self.root.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(self.root))
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(action, exc, self.root) from None
        self._open()

    @property
    def live(self):
        """The live state (SQLite): queue, attempts, progress, cancels."""
        if self._live is None:
            from mnistlab.runs.live import LiveState

            self._live = LiveState(self.root / "live.sqlite3", read_only=self.settings.read_only)
        return self._live

    def _open(self) -> None:
        """Once per instance: bring an older store up to date and clear leftovers (when writable)."""
        if self._checked or self.settings.read_only or not self.root.is_dir():
            return
        self._checked = True
        marker = self.root / STORE_FILE
        try:
            stored = json.loads(marker.read_text()) if marker.is_file() else {}
        except (OSError, ValueError, RecursionError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        if stored.get("format") != records.FORMAT:
            from mnistlab.runs import migrate

            migrate.migrate_store(self)
            self._write_marker()
        self.clean_leftovers()
        if (self.root / "live.sqlite3").is_file():
            try:
                self.live.cleanup()  # attempts that ended long ago
            except StoreError:
                pass  # a damaged live state is reported by doctor; finished runs still read

    def _write_marker(self) -> None:
        try:
            _atomic_write(self.root / STORE_FILE, json.dumps({"format": records.FORMAT}))
        except OSError as exc:
            raise store_error("writing the store's format marker", exc) from None

    def clean_leftovers(self, older_than: float = STALE_TMP_SECONDS) -> list[str]:
        """Remove temporary entries left by killed processes (older than ``older_than`` seconds)."""
        removed = []
        tmp = self.root / ".tmp"
        if not tmp.is_dir():
            return removed
        now = time.time()
        for entry in tmp.iterdir():
            try:
                if now - entry.lstat().st_mtime > older_than:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                    removed.append(entry.name)
            except OSError:
                continue
        return removed

    def tmp_dir(self, kind: str) -> Path:
        """A fresh private folder under ``.tmp/`` (for a run being written or a bundle being checked)."""
        path = self.root / ".tmp" / f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    # -- identity ------------------------------------------------------------------
    def resolve(self, config: RunConfig, dataset: Dataset | SourceInfo | None = None) -> Resolved:
        """``config`` resolved against its data: explicit sizes, pinned source, run id."""
        return resolve(config, dataset)

    # -- reading -------------------------------------------------------------------
    def exists(self, run_id: str) -> bool:
        return (self.run_path(run_id) / "metrics.json").is_file()

    def _stat_key(self, folder: Path) -> tuple:
        key = []
        for name in records.RUN_FILES:
            try:
                st = (folder / name).stat()
                key.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                key.append(None)
        return tuple(key)

    def _read(self, folder: Path) -> Run | BrokenRun:
        run_id = folder.name
        key = self._stat_key(folder)
        cached = self._cache.get(run_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            result: Run | BrokenRun = Run.from_files(folder, records.read_run_files(folder))
        except RecordError as exc:
            result = BrokenRun(run_id, _older_format_hint(folder, str(exc)))
        except OSError as exc:
            result = BrokenRun(run_id, f"its files cannot be read ({exc.strerror or exc})")
        self._cache[run_id] = (key, result)
        return result

    def load(self, run_id: str) -> Run:
        """A stored run; KeyError if there is none, BrokenRun if it cannot be read."""
        path = self.run_path(run_id)
        self._check_root()
        self._open()
        if not path.is_dir():
            alias = self.list_runs().aliases().get(run_id)
            if alias is None:
                raise KeyError(f"no run {run_id} in {self.root}")
            path = self.root / alias
        result = self._read(path)
        if isinstance(result, BrokenRun):
            raise result
        return result

    def lookup(self, run_id: str) -> Run | None:
        """The stored run, or None if there is none (a broken one raises BrokenRun)."""
        try:
            return self.load(run_id)
        except KeyError:
            return None

    def _run_dirs(self) -> Iterator[Path]:
        if not self._check_root():
            return
        self._open()
        try:
            entries = sorted(self.root.iterdir())
        except OSError as exc:
            raise store_error("listing the store", exc, self.root) from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            yield entry

    def list_runs(self) -> Listing:
        """Every stored run, newest first; broken folders are reported, never raised."""
        runs: list[Run] = []
        broken: list[BrokenRun] = []
        seen = set()
        for entry in self._run_dirs():
            seen.add(entry.name)
            if not RUN_ID.match(entry.name):
                broken.append(BrokenRun(entry.name[:40], "the folder name is not a run id"))
                continue
            result = self._read(entry)
            (broken if isinstance(result, BrokenRun) else runs).append(result)
        for gone in set(self._cache) - seen:  # another thread may have dropped it already
            self._cache.pop(gone, None)
        runs.sort(key=lambda r: r.metrics["created"], reverse=True)
        return Listing(runs, broken)

    def runs_frame(self, runs: list[Run] | None = None):
        """A pandas table of runs (one row each, see :meth:`Run.summary_row`)."""
        import pandas as pd

        runs = self.list_runs().runs if runs is None else runs
        return pd.DataFrame([run.summary_row() for run in runs])

    def state_token(self) -> tuple:
        """A small value that changes when what the pages show of the store changes; cheap enough to poll.

        A run folder added, removed or replaced (stored, imported, deleted, repaired: each is a
        rename in the root folder), or an attempt launched, started over or ended
        (:meth:`LiveState.activity`); not an epoch recorded. The root's entries are listed again
        only when its modification time moved (SQLite's side files come and go there too, so
        the time alone would move too often), and no run file is read. Never raises: a store
        that is missing or cannot be read gives a constant.
        """
        try:
            now = time.time_ns()
            mtime = os.stat(self.root).st_mtime_ns
            known = getattr(self, "_root_entries", None)
            # Reused only if listed clearly after its last change: a change within the same tick of
            # the file system's clock would keep the same time.
            if known is None or known[0] != mtime or known[1] - mtime < 50_000_000:
                with os.scandir(self.root) as entries:
                    names = frozenset((e.name, e.inode()) for e in entries if not e.name.startswith(".")
                                      and e.is_dir())
                known = self._root_entries = (mtime, now, hash(names))
            folders = known[2]
        except Exception:  # noqa: BLE001  (missing, unreadable, not a folder: nothing to follow)
            return ("no store",)
        try:
            activity = self.live.activity()
        except Exception:  # noqa: BLE001  (a live state that cannot be read: named by the pages that read it)
            activity = None
        return (folders, activity)

    # -- writing -------------------------------------------------------------------
    def check_allowed(self, resolved: Resolved) -> None:
        """Raise ReadOnlyError or LimitError if this instance may not train ``resolved``."""
        self.settings.refuse_writes("Training")
        self.settings.check_config(resolved.explicit)

    def train(self, resolved: Resolved, *, dataset: Dataset | None = None,
              on_epoch: Callable[[dict, list], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> Run:
        """Train ``resolved`` here and now and store it (no queue: see :mod:`mnistlab.runs.worker`).

        Returns the stored run (``status`` finished or diverged); raises
        :class:`mnistlab.models.training.Cancelled` when ``should_stop`` stops it.
        """
        from mnistlab.models.training import train

        self.check_allowed(resolved)
        self._writable("Training")
        data = dataset if dataset is not None else load_source(resolved.source)
        result = train(resolved.explicit, data, on_epoch=on_epoch, should_stop=should_stop)
        return self.write_run(resolved, result)

    def write_run(self, resolved: Resolved, result) -> Run:
        """Store a training result atomically (temporary folder, then rename)."""
        run_id, info = resolved.run_id, resolved.source
        task = get_task(resolved.config.task)
        self._writable("Storing a run")
        kept = result.history[result.kept_epoch - 1] if result.kept_epoch else {}
        metrics = {
            "run_id": run_id,
            "status": result.status,
            "kept_epoch": result.kept_epoch,
            "kept_reason": result.kept_reason,
            "epochs_run": len(result.history),
            "test_loss": result.test_loss,
            "test_accuracy": result.test_accuracy,
            "val_loss": kept.get("val_loss"),
            "val_accuracy": kept.get("val_accuracy"),
            "params": count_params(resolved.config.arch, resolved.config.task),
            "split": result.split,
            "timings": result.timings,
            "versions": result.versions,
            "data": {"kind": info.kind, "title": info.title, "fingerprint": info.fingerprint,
                     "reason": info.reason[:2000]},
            "n_test": int(len(result.test_digits)) if result.probabilities is not None else 0,
            "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "message": result.message,
        }
        config_doc = {"format": records.FORMAT, "run_id": run_id, "config": resolved.config.to_dict(),
                      "canonical": resolved.canonical_json, "aliases": []}
        history_doc = {"run_id": run_id, "epochs": records.clean(result.history)}
        metrics = records.clean(metrics)
        records.check_files(run_id, config_doc, history_doc, metrics)  # what is written reads back
        tmp = None
        try:
            tmp = self.tmp_dir(f"run-{run_id}")
            if result.status == "finished":
                records.save_predictions(tmp / "predictions.npz", run_id, result.probabilities,
                                         task.labels(result.test_digits), result.test_digits)
                records.save_weights(tmp / "weights.npz", run_id, resolved.config.arch, result.weights)
                epochs = getattr(result, "epochs", None)  # the test answers after every epoch (optional)
                if epochs is not None and epochs[0].shape == (len(result.history), metrics["n_test"]) and \
                        records.epochs_nbytes(*epochs[0].shape) <= records.SIZE_LIMITS["epochs.npz"]:
                    records.save_epochs(tmp / "epochs.npz", run_id, *epochs)
            _write(tmp / "config.json", records.json_text(config_doc))
            _write(tmp / "history.json", records.json_text(history_doc))
            _write(tmp / "metrics.json", records.json_text(metrics))
            self._place(tmp, run_id)
        except OSError as exc:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise store_error(f"storing run {run_id}", exc) from None
        return self.load(run_id)

    def _place(self, folder: Path, run_id: str) -> None:
        """Rename a whole run folder into place; a broken folder of the same id is replaced."""
        target = self.root / run_id
        if target.exists():
            existing = self._read(target) if target.is_dir() else None
            if isinstance(existing, Run):  # another process stored it meanwhile: keep that one
                shutil.rmtree(folder, ignore_errors=True)
                return
            trash = self.root / ".tmp" / f"replaced-{run_id}-{uuid.uuid4().hex[:8]}"
            os.rename(target, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(folder, target)

    # -- training through the queue -----------------------------------------------------
    def get_or_train(self, config: RunConfig, *, dataset: Dataset | None = None,
                     on_epoch: Callable[[dict, list], None] | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     on_wait: Callable[[Any], None] | None = None) -> Obtained:
        """The stored run for ``config``, trained first (in this process, through the queue) if needed.

        If another process is training it, wait for that one (``on_wait`` is called about once
        a second with its attempt). Over ``MNISTLAB_MAX_TRAININGS`` the run waits its turn.
        """
        from mnistlab.runs.worker import obtain

        return obtain(self, config, dataset=dataset, on_epoch=on_epoch, should_stop=should_stop, on_wait=on_wait)

    # -- housekeeping --------------------------------------------------------------
    def delete(self, run_id: str) -> None:
        """Remove a stored (or broken) run folder."""
        self.settings.refuse_writes("Deleting a run")
        path = self.run_path(run_id)
        if not path.exists():
            raise KeyError(f"no run {run_id} in {self.root}")
        try:
            trash = self.root / ".tmp" / f"deleted-{run_id}-{uuid.uuid4().hex[:8]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, trash)
        except OSError as exc:
            raise store_error(f"deleting run {run_id}", exc) from None
        shutil.rmtree(trash, ignore_errors=True)
        self._cache.pop(run_id, None)

    def doctor(self, repair: bool = False) -> DoctorReport:
        """Check the store: broken runs, leftovers, duplicates, live state; ``repair`` fixes what it can.

        Repairing moves broken run folders to ``.broken/`` (nothing is deleted), removes
        temporary leftovers, and requeues or fails attempts whose worker died.
        """
        from mnistlab.runs import migrate

        report = DoctorReport()
        if not self._check_root():
            return report
        if repair:
            self._writable("Repairing the store")
        report.migrated = migrate.migrated_pairs(self)
        listing = self.list_runs()
        report.runs = len(listing.runs)
        report.broken = listing.broken
        report.duplicates = migrate.duplicates(self)
        tmp = self.root / ".tmp"
        if tmp.is_dir():
            report.leftovers = sorted(entry.name for entry in tmp.iterdir())
        try:
            report.live = self.live.counts()
        except StoreError as exc:  # a damaged database is reported, not raised
            report.notes.append(f"the live state cannot be read: {exc}")
        if repair:
            for broken in listing.broken:
                source = self.root / broken.run_id
                target = self.root / ".broken" / f"{broken.run_id}-{uuid.uuid4().hex[:6]}"
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(source, target)
                report.repaired.append(f"moved broken run {broken.run_id} to {target}")
            for name in self.clean_leftovers(older_than=0):
                report.repaired.append(f"removed leftover .tmp/{name}")
            try:
                for attempt in self.live.reap():
                    report.repaired.append(f"attempt {attempt.id} of run {attempt.run_id}: {attempt.state}")
            except StoreError as exc:
                report.notes.append(f"the live state cannot be repaired: {exc}")
        return report


def _older_format_hint(folder: Path, reason: str) -> str:
    """A broken run written by an older mnistlab says how to convert it."""
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("format") != records.FORMAT and "canonical" in doc:
            return (f"stored by an older mnistlab ({reason}); open the store once with writing allowed, or run "
                    "`python -m mnistlab doctor --repair`, to convert it")
    except (OSError, ValueError, RecursionError):
        pass
    return reason


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write(tmp, text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

