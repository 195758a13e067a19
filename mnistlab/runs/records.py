"""The files of a stored run: their declared schemas, and the one code path that reads them.

A run folder holds::

    config.json       {"format", "run_id", "config", "canonical", "aliases"}
    history.json      {"run_id", "epochs": [one record per epoch]}
    metrics.json      {"run_id", "status", "kept_epoch", test metrics, split, timings, data, ...}
    predictions.npz   probabilities, labels, digits, run_id      (finished runs)
    weights.npz       w000, w001, ... in Keras' order, arch, run_id (finished runs)
    epochs.npz        classes, confidence (epochs_run, n_test), run_id (optional: the
                      test-set answers after every epoch, compact; see read_epochs)

Every file carries the run id, and reading checks it, so a file copied in from another run
is caught. The small JSON files are checked when a run is listed (:func:`read_run_files`);
the arrays when a run is opened (:func:`read_predictions`, :func:`read_weights`). Listing,
pages, the CLI and bundle import all go through these functions: a file that fails raises
:class:`RecordError` with a reason a person can act on, and the run is shown as broken.
Nothing here unpickles anything: arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import os
import re
import stat
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.runs.config import FIELDS, LATER_FIELDS, MAX_EPOCHS, ConfigError, RunConfig, id_of

FORMAT = 3
RUN_ID = re.compile(r"^[0-9a-f]{16}$")
STATUSES = ("finished", "diverged")
KEPT_REASONS = ("last", "best_val_loss")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
MAX_TEST_IMAGES = 70_000
MAX_ALIASES = 16
#: The most bytes each file of a run may hold (checked before it is read, and on bundle import).
SIZE_LIMITS = {
    "config.json": 64 * 1024,
    "history.json": 1024 * 1024,
    "metrics.json": 64 * 1024,
    "predictions.npz": 8 * 1024 * 1024,
    "weights.npz": 16 * 1024 * 1024,
    "epochs.npz": 32 * 1024 * 1024,  # 1,000 epochs of 10,000 test images at 3 bytes each
}
JSON_FILES = ("config.json", "history.json", "metrics.json")
ARRAY_FILES = ("predictions.npz", "weights.npz")
#: Files a finished run may lack (runs stored before they existed stay valid).
OPTIONAL_FILES = ("epochs.npz",)
RUN_FILES = JSON_FILES + ARRAY_FILES + OPTIONAL_FILES
#: What a whole run folder may hold in all (a bundle's runs are checked against it).
MAX_RUN_BYTES = sum(SIZE_LIMITS.values())


class RecordError(MnistlabError, ValueError):
    """A run file that does not match its schema; the message names the file and the problem."""


# -- a small declarative schema language ------------------------------------------------
#
# Each spec is a function ``check(value, where)`` that returns the checked value (numbers as
# floats, objects and lists as fresh copies) or raises RecordError naming ``where``. Listing
# checks thousands of documents, so each spec also has a fast twin (``check.fast(value)``): it
# accepts only values the spec accepts (the common ones: floats, not ints, for a number) and
# returns what the spec returns, without building the ``where`` texts; anything else it leaves
# to the spec (it raises _Reject, and ``check`` runs the spec, which accepts the value or says
# what is wrong with it). So a fast twin only ever decides "valid": every error, and every
# value it does not take outright, goes through the original checks.
Spec = Callable[[Any, str], Any]


class _Reject(Exception):
    """A fast check did not accept a value outright: the full check decides."""



def _spec(slow: Callable[[Any, str], Any], fast: Callable[[Any], Any]) -> Spec:
    def check(value: Any, where: str) -> Any:
        try:
            return fast(value)
        except _Reject:
            return slow(value, where)
    check.fast = fast  # type: ignore[attr-defined]
    check.slow = slow  # type: ignore[attr-defined]
    return check


def _fast_of(spec: Spec) -> Callable[[Any], Any]:
    """The fast twin of ``spec`` (a spec from elsewhere has none: it is simply called)."""
    fast = getattr(spec, "fast", None)
    if fast is not None:
        return fast

    def call(value: Any) -> Any:
        try:
            return spec(value, "")
        except RecordError:
            raise _Reject from None
    return call


def _bad(where: str, expected: str, got: Any) -> RecordError:
    text = repr(got)
    return RecordError(f"{where} must be {expected}, got {text[:60] + '…' if len(text) > 60 else text}")


def Int(lo: int, hi: int, null: bool = False) -> Spec:
    def check(value: Any, where: str) -> Any:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _bad(where, f"an integer in [{lo}, {hi}]" + (" or null" if null else ""), value)
        return value

    def fast(value: Any) -> Any:
        if type(value) is int and lo <= value <= hi:
            return value
        if value is None and null:
            return None
        raise _Reject
    return _spec(check, fast)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def Num(lo: float = -math.inf, hi: float = math.inf, null: bool = False) -> Spec:
    def check(value: Any, where: str) -> Any:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value) \
                or not lo <= value <= hi:
            raise _bad(where, f"a finite number in [{lo:g}, {hi:g}]" + (" or null" if null else ""), value)
        return float(value)

    def fast(value: Any) -> Any:
        # a float is finite exactly when value - value is 0.0 (inf - inf and NaN give NaN)
        if type(value) is float and lo <= value <= hi and value - value == 0.0:
            return value  # float(value) is value itself
        if value is None and null:
            return None
        raise _Reject  # ints (float() of a huge one), subclasses, anything else: the full check
    return _spec(check, fast)


def Str(max_len: int = 500, choices: tuple[str, ...] | None = None, pattern: re.Pattern | None = None,
        null: bool = False) -> Spec:
    def check(value: Any, where: str) -> Any:
        if value is None and null:
            return None
        if not isinstance(value, str) or len(value) > max_len:
            raise _bad(where, f"a text of at most {max_len} characters", value)
        if choices is not None and value not in choices:
            raise _bad(where, "one of " + ", ".join(map(repr, choices)), value)
        if pattern is not None and not pattern.match(value):
            raise _bad(where, f"a text matching {pattern.pattern}", value)
        return value

    match = pattern.match if pattern is not None else None
    if choices is not None:
        allowed = frozenset(c for c in choices if isinstance(c, str) and len(c) <= max_len
                            and (match is None or match(c)))

        def fast(value: Any) -> Any:
            if type(value) is str and value in allowed:
                return value
            if value is None and null:
                return None
            raise _Reject
    elif match is not None:
        def fast(value: Any) -> Any:
            if type(value) is str and len(value) <= max_len and match(value):
                return value
            if value is None and null:
                return None
            raise _Reject
    else:
        def fast(value: Any) -> Any:
            if type(value) is str and len(value) <= max_len:
                return value
            if value is None and null:
                return None
            raise _Reject
    return _spec(check, fast)


def List(item: Spec, max_len: int) -> Spec:
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, list) or len(value) > max_len:
            raise _bad(where, f"a list of at most {max_len} items", value)
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    item_fast = _fast_of(item)

    def fast(value: Any) -> Any:
        if type(value) is not list or len(value) > max_len:
            raise _Reject
        return [item_fast(v) for v in value]
    return _spec(check, fast)


def Obj(fields: Mapping[str, Spec], optional: Mapping[str, Spec] | None = None, extra: bool = False) -> Spec:
    """A JSON object with required ``fields``, ``optional`` ones, and (``extra``) anything else."""
    optional = optional or {}

    def check(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise _bad(where, "an object", value)
        missing = [k for k in fields if k not in value]
        if missing:
            raise RecordError(f"{where} lacks {', '.join(missing)}")
        unknown = [k for k in value if k not in fields and k not in optional]
        if unknown and not extra:
            raise RecordError(f"{where} has unknown key(s) {', '.join(map(repr, unknown[:5]))}")
        out = dict(value)
        for key, spec in {**fields, **optional}.items():
            if key in value:
                out[key] = spec(value[key], f"{where}.{key}")
        return out

    specs = {**fields, **optional}
    required = frozenset(fields)
    allowed = frozenset(specs)
    # the required fields are always there once checked; the optional ones only sometimes
    always = tuple((key, _fast_of(spec)) for key, spec in specs.items() if key in required)
    sometimes = tuple((key, _fast_of(spec)) for key, spec in specs.items() if key not in required)

    def fast(value: Any) -> Any:
        if type(value) is not dict or not required <= value.keys() \
                or not (extra or allowed.issuperset(value)):
            raise _Reject
        out = dict(value)
        for key, spec in always:
            out[key] = spec(value[key])
        for key, spec in sometimes:
            if key in value:
                out[key] = spec(value[key])
        return out
    return _spec(check, fast)


RUN_ID_SPEC = Str(16, pattern=RUN_ID)
SECONDS = Num(0, 1e9)
EPOCH_RECORD = Obj(
    {"epoch": Int(1, MAX_EPOCHS), "seconds": SECONDS, "elapsed": SECONDS},
    {key: Num(null=True) for key in HISTORY_KEYS},
)
SCHEMAS: dict[str, Spec] = {
    "config.json": Obj({
        "format": Int(FORMAT, FORMAT),
        "run_id": RUN_ID_SPEC,
        "config": Obj({}, extra=True),
        "canonical": Str(4000),
        "aliases": List(RUN_ID_SPEC, MAX_ALIASES),
    }),
    "history.json": Obj({"run_id": RUN_ID_SPEC, "epochs": List(EPOCH_RECORD, MAX_EPOCHS)}),
    "metrics.json": Obj({
        "run_id": RUN_ID_SPEC,
        "status": Str(20, STATUSES),
        "kept_epoch": Int(1, MAX_EPOCHS, null=True),
        "kept_reason": Str(20, KEPT_REASONS, null=True),
        "epochs_run": Int(0, MAX_EPOCHS),
        "test_loss": Num(0, null=True),
        "test_accuracy": Num(0, 1, null=True),
        "val_loss": Num(null=True),
        "val_accuracy": Num(0, 1, null=True),
        "params": Int(0, 10**9),
        "split": Obj({"description": Str(), "fit_images": Int(0, 10**6), "validation_images": Int(0, 10**6)}),
        "timings": Obj({"fit_seconds": SECONDS, "evaluate_seconds": SECONDS, "total_seconds": SECONDS}),
        "versions": Obj({}, extra=True),
        "data": Obj({"kind": Str(20, ("file", "keras", "sample", "arrays")), "title": Str(200),
                     "fingerprint": Str(100), "reason": Str(2000)}),
        "n_test": Int(0, MAX_TEST_IMAGES),
        "created": Str(40),
        "message": Str(2000),
    }, {"migrated_from": RUN_ID_SPEC}),
}


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The checked contents of a run's JSON files."""

    run_id: str
    config: RunConfig
    canonical: dict[str, Any]
    aliases: tuple[str, ...]
    history: list[dict[str, Any]]
    metrics: dict[str, Any]


def _read_text(path: str, name: str, size: int) -> bytes:
    """The bytes of the file at ``path`` (``name`` of a run, ``size`` bytes when it was stat'ed)."""
    limit = SIZE_LIMITS[name]
    if size > limit:
        raise RecordError(f"{name} is {size:,} bytes; at most {limit:,} are allowed")
    fd = os.open(path, _O_READ)
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:  # changed since it was stat'ed (or a short read): read on to the end
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data


def _parse_json(name: str, data: bytes) -> Any:
    """``data`` as JSON text, read as ``open(path, encoding="utf-8").read()`` would."""
    try:
        text = data.decode("utf-8")
        if "\r" in text:  # what a text-mode read does to line ends (universal newlines)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text.startswith("\ufeff"):
            return json.loads(text, parse_constant=lambda constant: _reject_constant(name, constant))
        return _DECODERS[name].decode(text)  # json.loads(text, parse_constant=...) without a new decoder
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name} is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecordError:  # NaN or Infinity (a ValueError too)
        raise
    except ValueError:  # int(): more digits than Python converts (sys.get_int_max_str_digits)
        raise RecordError(f"{name} holds an integer too long to read") from None
    except RecursionError:
        raise RecordError(f"{name} is nested too deeply to be a run file") from None


def _reject_constant(name: str, constant: str) -> Any:
    raise RecordError(f"{name} holds {constant}, which strict JSON does not allow")


_DECODERS = {name: json.JSONDecoder(parse_constant=functools.partial(_reject_constant, name)) for name in JSON_FILES}


def check_json(name: str, value: Any, run_id: str) -> Any:
    """``value`` (the parsed ``name``) checked against its schema and the run id."""
    value = SCHEMAS[name](value, name)
    if value["run_id"] != run_id:
        raise RecordError(f"{name} belongs to run {value['run_id']}, not to {run_id}")
    return value


def check_files(run_id: str, config_doc: Any, history_doc: Any, metrics_doc: Any) -> RunFiles:
    """The three JSON documents of a run, checked against their schemas and each other."""
    config_doc = check_json("config.json", config_doc, run_id)
    history_doc = check_json("history.json", history_doc, run_id)
    metrics = check_json("metrics.json", metrics_doc, run_id)
    try:
        config = RunConfig.from_dict(config_doc["config"])
    except ConfigError as exc:
        raise RecordError(f"config.json: {exc}") from None
    try:
        canonical = json.loads(config_doc["canonical"])
    except (ValueError, RecursionError):  # not JSON, an integer too long to read, nested too deeply
        raise RecordError("config.json: its canonical form is not JSON (or is nested too deeply)") from None
    if not isinstance(canonical, dict):
        raise RecordError("config.json: its canonical form is not an object")
    if id_of(config_doc["canonical"]) != run_id:
        raise RecordError("config.json: its canonical form hashes to another run id (the file was edited)")
    if canonical.get("data") != metrics["data"]["fingerprint"]:
        raise RecordError("metrics.json: its data fingerprint is not the one in the run's canonical form")
    same = {"task": config.task, "arch": config.arch, "epochs": config.epochs, "batch_size": config.batch_size,
            "optimizer": config.optimizer, "learning_rate": config.effective_learning_rate,
            "validation": config.validation, "patience": config.patience, "seed": config.seed}
    differs = [key for key, value in same.items() if canonical.get(key) != value]
    differs += [name for name in LATER_FIELDS  # a later field is in the canonical form only when not default
                if canonical.get(name, FIELDS[name].default) != getattr(config, name)]
    if differs:
        raise RecordError(f"config.json: the configuration's {', '.join(differs)} do not match its canonical form "
                          "(the file was edited)")
    history = history_doc["epochs"]
    if [h["epoch"] for h in history] != list(range(1, len(history) + 1)):
        raise RecordError("history.json: epochs must be numbered 1, 2, 3, … without gaps")
    if metrics["epochs_run"] != len(history):
        raise RecordError(f"metrics.json: epochs_run is {metrics['epochs_run']} but the history has "
                          f"{len(history)} epochs")
    if metrics["status"] == "finished":
        absent = [k for k in ("kept_epoch", "kept_reason", "test_loss", "test_accuracy") if metrics[k] is None]
        if absent:
            raise RecordError(f"metrics.json: a finished run needs {', '.join(absent)}")
        if metrics["n_test"] < 1:
            raise RecordError("metrics.json: a finished run was tested on at least one image, n_test is 0")
        if metrics["kept_epoch"] > len(history):
            raise RecordError(f"metrics.json: kept_epoch {metrics['kept_epoch']} is beyond the "
                              f"{len(history)} epochs run")
    return RunFiles(run_id, config, canonical, tuple(config_doc["aliases"]), history, metrics)


def _stat(path: str) -> os.stat_result | None:
    """``path``'s stat (symlinks followed), None where ``Path.is_file`` and ``is_dir`` say False."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EBADF):
            return None
        raise


def _stat_file(path: str) -> os.stat_result | None:
    """``path``'s stat if it is a file (``Path.is_file``), else None."""
    st = _stat(path)
    return st if st is not None and stat.S_ISREG(st.st_mode) else None


def read_run_files(folder: Path) -> RunFiles:
    """Read and check a run folder's JSON files (RecordError, or OSError for the disk)."""
    run_id = folder.name
    base = os.fspath(folder) + os.sep
    docs = []
    for name in JSON_FILES:
        st = _stat(base + name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise RecordError(f"{name} is a folder, not a file")
        if st is None or not stat.S_ISREG(st.st_mode):
            raise RecordError(f"{name} is missing")
        docs.append(_parse_json(name, _read_text(base + name, name, st.st_size)))
    files = check_files(run_id, *docs)
    if files.metrics["status"] == "finished":
        found = {name: _stat_file(base + name) for name in ARRAY_FILES}
        missing = [name for name, st in found.items() if st is None]
        if missing:
            raise RecordError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
        _check_array_headers(base, files, {name: st.st_size for name, st in found.items()})
    return files


# -- the arrays' layout, from their zip directories --------------------------------------
#
# Listing reads, for each .npz, its zip directory (names and sizes) and its run_id array.
# zipfile and np.load do that in about 0.2 ms a file; the fast reader below does the same in a
# few reads of the file's ends, for the files np.savez writes: one end record without comment
# or ZIP64 records, stored (uncompressed) entries without extra fields in the directory, and a
# run_id whose .npy header is exactly the one numpy writes for a text scalar. It accepts a file
# only when every step the zipfile/np.load reading checks holds (signatures, the entry's local
# header and name, its CRC, the .npy magic, version, header and data size), and returns what
# that reading returns; anything else (a damaged or unusual file) goes to that reading itself,
# which then names the problem exactly as before.
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
#: zipfile.structCentralDir ("<4s4B4HL2L5H2L") with only the fields read here: signature, version
#: needed to extract, flags, method, CRC, sizes, lengths of name / extra field / comment, offset
_CENTRAL = struct.Struct("<4s2xBxHH4xLLLHHH8xL")
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_TAIL = 4096  # bytes read from a file's end: the end record, the directory, often run_id itself
_MAX_EXTRACT_VERSION = 63  # zipfile.MAX_EXTRACT_VERSION
_TEXT_SCALAR_HEADER = re.compile(rb"\{'descr': '<U([1-9][0-9]{0,2})', 'fortran_order': False, 'shape': \(\), \} *\n")
_NPY_V1 = b"\x93NUMPY\x01\x00"


def _fast_directory(fd: int, size: int) -> tuple[dict[str, int], str] | None:
    """What :func:`_read_directory` returns for a plain np.savez file, or None (read it that way)."""
    if size < _END.size:
        return None
    tail_at = max(size - _TAIL, 0)
    tail = os.pread(fd, size - tail_at, tail_at)
    if len(tail) != size - tail_at:
        return None
    end = _END.unpack_from(tail, len(tail) - _END.size)
    if end[0] != b"PK\x05\x06" or end[7] != 0:  # no end record, or one with a comment
        return None
    if size >= _END.size + 20 and tail[-_END.size - 20:-_END.size - 16] == b"PK\x06\x07":
        return None  # a ZIP64 end record locator
    cd_size, cd_offset = end[5], end[6]
    if cd_offset != size - _END.size - cd_size:  # data before the archive (or a bad offset)
        return None
    if cd_offset >= tail_at:
        directory = tail[cd_offset - tail_at:len(tail) - _END.size]
    else:
        directory = os.pread(fd, cd_size, cd_offset)
        if len(directory) != cd_size:
            return None
    sizes: dict[str, int] = {}
    run_id_entry = None
    pos = 0
    unpack = _CENTRAL.unpack_from
    while pos < cd_size:
        if pos + _CENTRAL.size > cd_size:
            return None
        signature, extract_version, flags, method, crc, compress_size, file_size, name_len, extra_len, \
            comment_len, offset = unpack(directory, pos)
        name_at = pos + _CENTRAL.size
        pos = name_at + name_len + extra_len + comment_len
        if signature != b"PK\x01\x02" or extract_version > _MAX_EXTRACT_VERSION or extra_len or pos > cd_size:
            return None
        raw = directory[name_at:name_at + name_len]
        try:
            name = raw.decode("ascii")  # ASCII: decoded alike as UTF-8 and as cp437
        except UnicodeDecodeError:
            return None
        if name[-4:] != ".npy" or "\0" in name or name[:-4] in sizes:
            return None  # entries that are not arrays, a name zipfile cuts at a NUL, twice the same
        sizes[name[:-4]] = file_size
        if name == "run_id.npy":
            run_id_entry = (raw, flags, method, crc, compress_size, file_size, offset)
    if run_id_entry is None:
        return None
    raw, flags, method, crc, compress_size, file_size, offset = run_id_entry
    if file_size > 4096 or flags & 0x61 or method != 0 or compress_size != file_size:
        return None  # large, encrypted or patched, compressed
    # the entry: its local header, its name, its data (in the tail already, most often)
    want = _LOCAL.size + len(raw) + 64 + file_size
    if offset >= tail_at and offset + want <= size:
        local, at = tail, offset - tail_at
    else:
        local, at = os.pread(fd, want, offset), 0
    if len(local) < at + _LOCAL.size:
        return None
    header = _LOCAL.unpack_from(local, at)
    data_at = at + _LOCAL.size + header[10] + header[11]  # after the name and the extra field
    if header[0] != b"PK\x03\x04" or local[at + _LOCAL.size:at + _LOCAL.size + header[10]] != raw:
        return None
    data = local[data_at:data_at + file_size]
    if len(data) != file_size:
        if data_at + file_size > size - offset + at:
            return None
        data = os.pread(fd, file_size, offset + data_at - at)
        if len(data) != file_size:
            return None
    if zlib.crc32(data) != crc:
        return None
    # the .npy: version 1.0, the header numpy writes for a 0-d text array, then its characters
    if data[:8] != _NPY_V1 or len(data) < 10:
        return None
    header_end = 10 + int.from_bytes(data[8:10], "little")
    match = _TEXT_SCALAR_HEADER.fullmatch(data, 10, header_end) if header_end <= len(data) else None
    if match is None:
        return None
    chars = data[header_end:header_end + 4 * int(match[1])]
    if len(chars) != 4 * int(match[1]):
        return None
    try:
        return sizes, chars.decode("utf-32-le").rstrip("\0")
    except UnicodeDecodeError:
        return None


def _read_directory(path: Path) -> tuple[dict[str, int], str]:
    """Each array's stored size from the zip directory, and the stored run id: no array data is read
    (zipfile and np.load: what every file is checked against)."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {info.filename[:-4]: info.file_size for info in archive.infolist()
                     if info.filename.endswith(".npy")}
            if len(sizes) != len(archive.infolist()):
                raise RecordError(f"{path.name} holds entries that are not arrays")
            if sizes.get("run_id", 1 << 20) > 4096:
                raise RecordError(f"{path.name} does not say which run it belongs to")
            stored = np.load(io.BytesIO(archive.read("run_id.npy")), allow_pickle=False)
    except RecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or garbage zip, bad header: the file is broken
        raise RecordError(f"{path.name} is not a readable plain .npz ({type(exc).__name__}: {exc})") from None
    return sizes, str(stored) if stored.shape == () and stored.dtype.kind == "U" else ""


def _directory(path: str | Path, size: int | None = None) -> tuple[dict[str, int], str]:
    """Each array's stored size from the zip directory, and the stored run id: no array data is read.
    ``size``: the file's size when it was just stat'ed."""
    if size is None:
        size = os.stat(path).st_size
    name = os.path.basename(path)
    if size > SIZE_LIMITS[name]:
        raise RecordError(f"{name} is larger than {SIZE_LIMITS[name]:,} bytes")
    try:
        fd = os.open(path, _O_READ)
    except OSError:
        fd = None  # the full reading below says what is wrong, as it always did
    if fd is not None:
        try:
            found = _fast_directory(fd, size)
        except OSError:
            found = None
        finally:
            os.close(fd)
        if found is not None:
            return found
    return _read_directory(Path(path))


def check_array_headers(folder: Path, files: RunFiles) -> None:
    """The arrays' names, sizes and run id from the zip directory (cheap: listing does it).

    An array's stored size is its header (a multiple of 64 bytes) plus its data, so an array
    of another shape or type is caught here; the values are checked when the run is opened.
    """
    _check_array_headers(os.fspath(folder) + os.sep, files, {})


def _check_array_headers(base: str, files: RunFiles, sizes_of: dict[str, int]) -> None:
    """:func:`check_array_headers` for the folder ``base`` (ending in a separator); ``sizes_of``:
    the sizes of files already stat'ed."""
    from mnistlab.datasets.tasks import get_task
    from mnistlab.models.architectures import weight_shapes

    n, units = files.metrics["n_test"], get_task(files.config.task).units
    expected = {
        "predictions.npz": {"probabilities": n * units * 4, "labels": n * 8, "digits": n * 8},
        "weights.npz": {f"w{i:03d}": 4 * math.prod(shape)
                        for i, shape in enumerate(weight_shapes(files.config.arch, files.config.task))},
    }
    epochs = _stat_file(base + "epochs.npz")
    if epochs is not None:
        sizes_of = {**sizes_of, "epochs.npz": epochs.st_size}
        expected["epochs.npz"] = {"classes": files.metrics["epochs_run"] * n,
                                  "confidence": files.metrics["epochs_run"] * n * 2}
    for name, arrays in expected.items():
        sizes, run_id = _directory(base + name, sizes_of.get(name))
        if run_id != files.run_id:
            raise RecordError(f"{name} does not belong to run {files.run_id}")
        extra = set(sizes) - set(arrays) - {"run_id", "arch"}
        if extra:
            raise RecordError(f"{name} holds unexpected arrays {sorted(extra)[:3]}")
        for key, nbytes in arrays.items():
            if key not in sizes:
                raise RecordError(f"{name} lacks {key}")
            header = sizes[key] - nbytes
            if header <= 0 or header % 64 or header > 4096:
                raise RecordError(f"{name}: {key} has the wrong shape or type for this run")


# -- arrays ---------------------------------------------------------------------------
def _load_npz(path: Path, run_id: str) -> dict[str, np.ndarray]:
    limit = SIZE_LIMITS[path.name]
    if not path.is_file():
        raise RecordError(f"{path.name} is missing")
    if path.stat().st_size > limit:
        raise RecordError(f"{path.name} is larger than {limit:,} bytes")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:  # truncated zip, bad header, pickled (object) arrays, ...
        raise RecordError(f"{path.name} is not a readable plain .npz ({type(exc).__name__}: {exc})") from None
    stored = arrays.pop("run_id", None)
    if stored is None or stored.shape != () or str(stored) != run_id:
        raise RecordError(f"{path.name} does not belong to run {run_id}")
    return arrays


def _expect(name: str, key: str, array: np.ndarray | None, shape: tuple, kinds: str) -> np.ndarray:
    if array is None:
        raise RecordError(f"{name} lacks {key}")
    if array.dtype.kind not in kinds or array.shape != shape:
        raise RecordError(f"{name}: {key} must be {'numbers' if 'f' in kinds else 'integers'} of shape {shape}, "
                          f"got {array.dtype} {array.shape}")
    return array


@dataclasses.dataclass(frozen=True)
class Predictions:
    probabilities: np.ndarray  # (N, units) as the model output them
    labels: np.ndarray  # task labels of the test set
    digits: np.ndarray  # digit labels of the test set


def read_predictions(folder: Path, run_id: str, task: str, n_test: int) -> Predictions:
    """The test-set predictions, checked: shapes, finite, probabilities that add up."""
    from mnistlab.datasets.tasks import get_task

    name = "predictions.npz"
    arrays = _load_npz(folder / name, run_id)
    units = get_task(task).units
    p = _expect(name, "probabilities", arrays.get("probabilities"), (n_test, units), "f")
    labels = _expect(name, "labels", arrays.get("labels"), (n_test,), "iu")
    digits = _expect(name, "digits", arrays.get("digits"), (n_test,), "iu")
    if not np.isfinite(p).all() or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        raise RecordError(f"{name}: probabilities must be finite and in [0, 1]")
    if units > 1 and n_test and np.abs(p.sum(axis=1) - 1).max() > 1e-3:
        raise RecordError(f"{name}: each row of probabilities must add up to 1")
    if n_test and (digits.min() < 0 or digits.max() > 9):
        raise RecordError(f"{name}: digits must be in 0-9")
    if not np.array_equal(labels, get_task(task).labels(digits)):
        raise RecordError(f"{name}: labels do not match the digits for the task {task!r}")
    return Predictions(p.astype(np.float32, copy=False), labels.astype(np.int64), digits.astype(np.int64))


def read_weights(folder: Path, run_id: str, arch: str, task: str) -> list[np.ndarray]:
    """The model's weights in Keras' order, checked against the architecture's shapes."""
    from mnistlab.models.architectures import weight_shapes

    name = "weights.npz"
    arrays = _load_npz(folder / name, run_id)
    stored_arch = arrays.pop("arch", None)
    if stored_arch is None or str(stored_arch) != arch:
        raise RecordError(f"{name} holds the weights of {str(stored_arch)[:20]!r}, not of {arch!r}")
    shapes = weight_shapes(arch, task)
    expected = [f"w{i:03d}" for i in range(len(shapes))]
    if sorted(arrays) != expected:
        raise RecordError(f"{name} must hold {len(shapes)} arrays ({expected[0]}…{expected[-1]})")
    weights = [_expect(name, key, arrays[key], shape, "f") for key, shape in zip(expected, shapes)]
    if not all(np.isfinite(w).all() for w in weights):
        raise RecordError(f"{name}: weights must be finite")
    return [w.astype(np.float32, copy=False) for w in weights]


@dataclasses.dataclass(frozen=True)
class Epochs:
    """The test-set answers after every epoch, compact: row e is the model at the end of epoch e + 1."""

    classes: np.ndarray  # (epochs_run, n_test) predicted class (task label), uint8
    confidence: np.ndarray  # (epochs_run, n_test) probability of that class, float16 in [0, 1]


def epochs_nbytes(epochs_run: int, n_test: int) -> int:
    """What ``epochs.npz`` takes on disk (arrays, headers, zip directory), to stay under its limit."""
    return 3 * epochs_run * n_test + 2048


def read_epochs(folder: Path, run_id: str, task: str, n_test: int, epochs_run: int) -> Epochs | None:
    """The per-epoch test answers, checked (shapes, classes of the task, finite probabilities in [0, 1]);
    None for a run stored without them."""
    from mnistlab.datasets.tasks import get_task

    name = "epochs.npz"
    if not (folder / name).is_file():
        return None
    arrays = _load_npz(folder / name, run_id)
    if set(arrays) != {"classes", "confidence"}:
        raise RecordError(f"{name} must hold exactly classes and confidence, got {sorted(arrays)[:4]}")
    classes = _expect(name, "classes", arrays["classes"], (epochs_run, n_test), "u")
    confidence = _expect(name, "confidence", arrays["confidence"], (epochs_run, n_test), "f")
    if classes.dtype != np.uint8 or confidence.dtype != np.float16:
        raise RecordError(f"{name}: classes must be uint8 and confidence float16, got {classes.dtype} and "
                          f"{confidence.dtype}")
    if classes.size and classes.max() >= get_task(task).n_classes:
        raise RecordError(f"{name}: classes must be classes of the task {task!r} (0-{get_task(task).n_classes - 1})")
    if not np.isfinite(confidence).all() or confidence.min(initial=0) < 0 or confidence.max(initial=0) > 1:
        raise RecordError(f"{name}: confidence must be finite probabilities in [0, 1]")
    return Epochs(classes, confidence)


# -- writing --------------------------------------------------------------------------
def json_text(value: Any) -> str:
    return json.dumps(value, indent=1, allow_nan=False)


def clean(value: Any) -> Any:
    """NaN/inf -> None, NumPy scalars -> Python, so JSON stays strict."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def save_predictions(path: Path, run_id: str, probabilities, labels, digits) -> None:
    np.savez(path, probabilities=np.asarray(probabilities, np.float32), labels=np.asarray(labels, np.int64),
             digits=np.asarray(digits, np.int64), run_id=np.array(run_id))


def save_weights(path: Path, run_id: str, arch: str, weights) -> None:
    np.savez(path, arch=np.array(arch), run_id=np.array(run_id),
             **{f"w{i:03d}": np.asarray(w, np.float32) for i, w in enumerate(weights)})


def save_epochs(path: Path, run_id: str, classes, confidence) -> None:
    np.savez(path, classes=np.asarray(classes, np.uint8), confidence=np.asarray(confidence, np.float16),
             run_id=np.array(run_id))
