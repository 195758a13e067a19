"""Run bundles: a ``.zip`` of stored runs that another machine can import.

A bundle holds ``<run_id>/<file>`` entries (each run's JSON files, ``predictions.npz`` and
``weights.npz``: plain arrays, no model files) and a ``mnistlab-bundle.json`` manifest.
Import treats the file as hostile and never deserializes a model or imports TensorFlow:

- the zip itself: a size limit, only known entry names (so no path can escape the store:
  no "zip slip"), each entry's size checked against the limit of its kind of file *before*
  it is unpacked and again while it is (a zip bomb stops at the limit), and every way a zip
  can be malformed (bad CRC, truncated, encrypted, unknown compression) ends as
  :class:`BundleError`;
- every run: the same checks as any stored run (:mod:`mnistlab.runs.records`: schemas, the
  run id inside every file, the id hashed from the stored canonical form, arrays' shapes).

Everything is unpacked and checked in a staging folder first; a bad bundle changes nothing
in the store, and a run already in the store is never overwritten.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
import zlib
from pathlib import Path

from mnistlab.errors import BrokenRun, BundleError
from mnistlab.runs import records
from mnistlab.runs.records import RUN_FILES, SIZE_LIMITS
from mnistlab.runs.store import RunStore

MANIFEST = "mnistlab-bundle.json"
MAX_BUNDLE_BYTES = 200 * 1024 * 1024
MAX_RUNS = 500
#: What all runs of one bundle may unpack to.
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
_ENTRY = re.compile(r"^([0-9a-f]{16})/(" + "|".join(re.escape(f) for f in RUN_FILES) + r")$")
#: Everything a malformed zip can raise while it is read.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
              ValueError, OSError, KeyError, UnicodeDecodeError)


def export_bundle(store: RunStore, run_ids: list[str]) -> bytes:
    """The runs as one zip file (bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps({"format": records.FORMAT, "runs": list(run_ids)}))
        for run_id in run_ids:
            run = store.load(run_id)
            for name in RUN_FILES:
                path = run.path / name
                if path.is_file():
                    archive.write(path, f"{run.run_id}/{name}")
    return buffer.getvalue()


def _entries(archive: zipfile.ZipFile) -> dict[str, dict[str, zipfile.ZipInfo]]:
    runs: dict[str, dict[str, zipfile.ZipInfo]] = {}
    total = 0
    for info in archive.infolist():
        if info.filename == MANIFEST:
            if info.file_size > 1024 * 1024:
                raise BundleError("its manifest is larger than 1 MB")
            continue
        if info.is_dir():
            continue
        match = _ENTRY.match(info.filename)
        if match is None:
            raise BundleError(f"unexpected entry {info.filename[:80]!r}: a bundle holds only "
                              f"<run id>/<{'|'.join(RUN_FILES)}>")
        if info.flag_bits & 0x1:
            raise BundleError(f"entry {info.filename} is encrypted")
        name = match.group(2)
        if info.file_size > SIZE_LIMITS[name]:
            raise BundleError(f"entry {info.filename} unpacks to {info.file_size:,} bytes; a run's {name} may "
                              f"hold at most {SIZE_LIMITS[name]:,}")
        total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise BundleError(f"the bundle unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MB")
        files = runs.setdefault(match.group(1), {})
        if name in files:
            raise BundleError(f"entry {info.filename} appears twice")
        files[name] = info
    if not runs:
        raise BundleError("the bundle holds no runs")
    if len(runs) > MAX_RUNS:
        raise BundleError(f"the bundle holds {len(runs)} runs; at most {MAX_RUNS} at a time")
    return runs


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> None:
    """Copy one entry, stopping at ``limit`` bytes whatever its header claimed."""
    written = 0
    with archive.open(info) as src, open(target, "wb") as dst:
        while True:
            block = src.read(1 << 20)
            if not block:
                break
            written += len(block)
            if written > limit:
                raise BundleError(f"entry {info.filename} unpacks to more than it says ({limit:,} bytes at most)")
            dst.write(block)


def _check_run(staging: RunStore, run_id: str) -> None:
    """The same checks as any stored run, arrays included."""
    try:
        run = staging.load(run_id)
        if run.is_finished:
            run.predictions()
            run.weights()
            run.epochs()
    except BrokenRun as exc:
        raise BundleError(f"run {run_id}: {exc.reason}") from None
    except KeyError:
        raise BundleError(f"run {run_id}: its files are missing") from None


def _read_source(source: bytes | str | os.PathLike) -> io.BytesIO:
    if isinstance(source, (bytes, bytearray)):
        if len(source) > MAX_BUNDLE_BYTES:
            raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MB")
        return io.BytesIO(bytes(source))
    path = Path(source)
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES // 2**20} MB")
    return io.BytesIO(path.read_bytes())


def import_bundle(store: RunStore, source: bytes | str | os.PathLike) -> tuple[list[str], list[str]]:
    """Import a bundle into ``store``; returns (imported run ids, run ids already present).

    Raises BundleError (and changes nothing) if anything in it is wrong.
    """
    store.settings.refuse_writes("Importing runs")
    stream = _read_source(source)
    store._writable("Importing runs")
    staging_root = store.tmp_dir("import")
    try:
        try:
            with zipfile.ZipFile(stream) as archive:
                runs = _entries(archive)
                for run_id, files in runs.items():
                    folder = staging_root / run_id
                    folder.mkdir()
                    for name, info in files.items():
                        _unpack(archive, info, folder / name, SIZE_LIMITS[name])
        except BundleError:
            raise
        except ZIP_ERRORS as exc:
            raise BundleError(f"not a readable zip file ({type(exc).__name__}: {str(exc)[:200]})") from None
        staging = RunStore(staging_root, settings=store.settings)
        staging._checked = True  # a bundle is never migrated: only today's format is accepted
        for run_id in runs:
            _check_run(staging, run_id)
        imported, present = [], []
        for run_id in runs:
            if (store.root / run_id).exists():  # stored (or broken: never overwritten by an import)
                present.append(run_id)
            else:
                os.rename(staging_root / run_id, store.root / run_id)
                imported.append(run_id)
        return imported, present
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
