"""Run bundles: a ``.zip`` of stored runs that another machine can import.

A bundle holds ``<run_id>/<file>`` entries (the run folder's JSON, ``.npz`` and
``.keras`` files) and a ``mnistlab-bundle.json`` manifest. Import treats the file as
hostile: a size limit, only known entry names (so no path can escape the store: no "zip
slip"), JSON parsed as JSON, arrays loaded with ``allow_pickle=False``, models loaded with
``safe_mode=True``, and every run's id recomputed from its configuration. Everything is
checked in a staging folder first; a bad bundle changes nothing in the store.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path

import numpy as np

from mnistlab.errors import BrokenRun, BundleError
from mnistlab.runs.store import RunStore

MANIFEST = "mnistlab-bundle.json"
RUN_FILES = ("config.json", "history.json", "metrics.json", "predictions.npz", "first_layer.npz", "model.keras")
MAX_BUNDLE_BYTES = 200 * 1024 * 1024
MAX_ENTRY_BYTES = 100 * 1024 * 1024
MAX_RUNS = 500
_ENTRY = re.compile(r"^([0-9a-f]{16})/(" + "|".join(re.escape(f) for f in RUN_FILES) + r")$")


def export_bundle(store: RunStore, run_ids: list[str]) -> bytes:
    """The runs as one zip file (bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps({"format": 1, "runs": list(run_ids)}))
        for run_id in run_ids:
            run = store.load(run_id)
            for name in RUN_FILES:
                path = run.path / name
                if path.is_file():
                    archive.write(path, f"{run_id}/{name}")
    return buffer.getvalue()


def _entries(archive: zipfile.ZipFile) -> dict[str, dict[str, zipfile.ZipInfo]]:
    runs: dict[str, dict[str, zipfile.ZipInfo]] = {}
    total = 0
    for info in archive.infolist():
        if info.filename == MANIFEST or info.is_dir():
            continue
        match = _ENTRY.match(info.filename)
        if match is None:
            raise BundleError(f"unexpected entry {info.filename[:80]!r}: a bundle holds only "
                              f"<run id>/<{'|'.join(RUN_FILES)}>")
        if info.file_size > MAX_ENTRY_BYTES:
            raise BundleError(f"entry {info.filename} is larger than {MAX_ENTRY_BYTES // 2**20} MB")
        total += info.file_size
        if total > 4 * MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle unpacks to more than {4 * MAX_BUNDLE_BYTES // 2**20} MB")
        files = runs.setdefault(match.group(1), {})
        if match.group(2) in files:
            raise BundleError(f"entry {info.filename} appears twice")
        files[match.group(2)] = info
    if not runs:
        raise BundleError("the bundle holds no runs")
    if len(runs) > MAX_RUNS:
        raise BundleError(f"the bundle holds {len(runs)} runs; at most {MAX_RUNS} at a time")
    return runs


def _check_arrays(path: Path, keys: tuple[str, ...]) -> None:
    try:
        with np.load(path, allow_pickle=False) as npz:  # refuses pickled (object) arrays
            for key in keys:
                npz[key]
    except Exception as exc:
        raise BundleError(f"{path.parent.name}/{path.name} is not a plain .npz with {list(keys)} "
                          f"({type(exc).__name__}: {exc})") from exc


def _check_run(staging: RunStore, run_id: str, check_model: bool) -> None:
    try:
        run = staging.load(run_id)
    except BrokenRun as exc:
        raise BundleError(f"run {run_id}: {exc.reason}") from exc
    _check_arrays(run.path / "predictions.npz", ("probabilities", "labels", "digits"))
    if run.has_first_layer:
        _check_arrays(run.path / "first_layer.npz", ("kernels", "biases"))
    if check_model and (run.path / "model.keras").is_file():
        try:
            run.load_model()
        except Exception as exc:
            raise BundleError(f"run {run_id}: model.keras does not load safely ({type(exc).__name__}: {exc})") from exc


def import_bundle(store: RunStore, source: bytes | str | os.PathLike, check_model: bool = True) -> tuple[list, list]:
    """Import a bundle into ``store``; returns (imported run ids, run ids already present).

    Raises BundleError (and changes nothing) if anything in it is wrong.
    """
    store.settings.refuse_writes("Importing runs")
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MB")
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise BundleError(f"{path}: no such file")
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MB")
        stream = io.BytesIO(path.read_bytes())
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"not a zip file ({exc})") from exc

    staging_root = store.root / ".tmp" / f"import-{uuid.uuid4().hex[:8]}"
    try:
        with archive:
            runs = _entries(archive)
            staging = RunStore(staging_root, settings=store.settings)
            for run_id, files in runs.items():
                folder = staging_root / run_id
                folder.mkdir(parents=True)
                for name, info in files.items():
                    with archive.open(info) as src, open(folder / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    if (folder / name).stat().st_size > MAX_ENTRY_BYTES:
                        raise BundleError(f"entry {run_id}/{name} is larger than it says")
        for run_id in runs:
            _check_run(staging, run_id, check_model)
        imported, present = [], []
        store.root.mkdir(parents=True, exist_ok=True)
        for run_id in runs:
            if (store.root / run_id).exists():  # finished (or broken: never overwritten by an import)
                present.append(run_id)
            else:
                os.rename(staging_root / run_id, store.root / run_id)
                imported.append(run_id)
        return imported, present
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
