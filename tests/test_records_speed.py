"""Listing reads every run's files fast, and exactly as the plain reading would.

:mod:`mnistlab.runs.records` reads, on every listing, each run's JSON files and each .npz's zip
directory and run id. Two shortcuts make that fast: a reader of the zip directory and the run_id
array that takes the files np.savez writes and hands anything else to zipfile and np.load, and
fast twins of the schema checks that only ever accept (every error comes from the full check).
These tests hold the shortcuts to the plain reading: the same result, or the same error, on
healthy files and on thousands of damaged ones; and a healthy store never needs the slow path.
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnistlab.runs import records
from mnistlab.runs.records import RecordError
from mnistlab.runs.store import RunStore
from tests.synthetic import synthetic_configs, write_runs

NPZ_FILES = ("predictions.npz", "weights.npz", "epochs.npz")


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("records-speed") / "runs"
    ids = write_runs(RunStore(root), synthetic_configs(6), n_test=200)
    return root, ids


def outcome(read, path: Path):
    try:
        return "ok", read(path)
    except RecordError as exc:
        return "error", str(exc)


def fast(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return records._fast_directory(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def savez(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def zipped(members: dict[str, bytes], comment: bytes = b"", extra: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate name
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name.split("#")[0])
                info.extra = extra
                archive.writestr(info, data)
            archive.comment = comment
    return buffer.getvalue()


def npy(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value)
    return buffer.getvalue()


def npy_header(text: bytes, body: bytes, version: bytes = b"\x01\x00") -> bytes:
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + version + len(text).to_bytes(2 if version == b"\x01\x00" else 4, "little") + text + body


def variants(data: bytes, rng: random.Random):
    """``data`` (an .npz as np.savez wrote it) damaged and rebuilt in many ways."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    run_id = str(arrays["run_id"])
    chars = np.array(run_id).tobytes()
    header = b"{'descr': '<U16', 'fortran_order': False, 'shape': (), }"
    entry = zipfile.ZipFile(io.BytesIO(data)).getinfo("run_id.npy").header_offset
    yield "as written", data
    for i in range(300):  # bytes changed in the end records, the directory, the run_id entry
        damaged = bytearray(data)
        lo, hi = rng.choice([(max(0, len(data) - 700), len(data)), (entry, entry + 260)])
        for _ in range(rng.choice((1, 1, 2, 3))):
            at = rng.randrange(lo, min(hi, len(data)))
            damaged[at] = rng.choice((rng.randrange(256), damaged[at] ^ 1, 0, 0xFF))
        yield f"bytes changed {i}", bytes(damaged)
    for i in range(40):
        yield f"truncated {i}", data[:rng.randrange(len(data))]
    yield "empty", b""
    yield "trailing bytes", data + b"xx"
    yield "bytes before", b"junk" + data
    others = {f"{key}.npy": npy(value) for key, value in arrays.items() if key != "run_id"}
    members = {**others, "run_id.npy": npy(arrays["run_id"])}
    compressed = io.BytesIO()
    np.savez_compressed(compressed, **arrays)
    yield "compressed", compressed.getvalue()
    for name, value in {"bytes": np.array(run_id.encode()), "int": np.array(5), "U17": np.array(run_id, "<U17"),
                        "short": np.array(run_id[:15]), "1-d": np.array([run_id]), "big-endian": np.array(run_id, ">U16"),
                        "NUL inside": np.array(run_id[:8] + "\0" + run_id[9:]), "long": np.array("a" * 2000),
                        "not ASCII": np.array("é" * 16)}.items():
        yield f"run_id {name}", savez(**{**arrays, "run_id": value})
    yield "no run_id", savez(**{k: v for k, v in arrays.items() if k != "run_id"})
    yield "an array more", savez(**arrays, zzz=np.zeros(3))
    yield "not an array", zipped({**members, "readme.txt": b"hi"})
    yield "a comment", zipped(members, comment=b"a comment")
    yield "twice run_id", zipped({**members, "run_id.npy#2": npy(np.array("f" * 16))})
    yield "extra fields", zipped(members, extra=b"\x55\x54\x05\x00\x01\x00\x00\x00\x00")
    for name, member in {
        "version 2": npy_header(header, chars, b"\x02\x00"),
        "version 3": npy_header(header, chars, b"\x03\x00"),
        "fortran order": npy_header(header.replace(b"False", b"True"), chars),
        "compact header": npy_header(b"{'descr':'<U16','fortran_order':False,'shape':()}", chars),
        "keys reordered": npy_header(b"{'shape': (), 'fortran_order': False, 'descr': '<U16', }", chars),
        "Python 2 header": npy_header(b"{'descr': '<U16', 'fortran_order': False, 'shape': (1L,), }", chars),
        "data short": npy_header(header, chars[:40]),
        "data long": npy_header(header, chars + b"xxxx"),
        "U0": npy_header(b"{'descr': '<U0', 'fortran_order': False, 'shape': (), }", b""),
        "a surrogate": npy_header(header, chars[:-4] + (0xD800).to_bytes(4, "little")),
        "beyond Unicode": npy_header(header, chars[:-4] + (0x110000).to_bytes(4, "little")),
        "a key more": npy_header(b"{'descr': '<U16', 'fortran_order': False, 'shape': (), 'x': 1}", chars),
    }.items():
        yield f"run_id.npy {name}", zipped({**others, "run_id.npy": member})


@pytest.mark.parametrize("name", NPZ_FILES)
def test_the_fast_directory_reader_agrees_with_zipfile_and_numpy(synthetic_store, tmp_path, name):
    root, ids = synthetic_store
    original = (root / ids[0] / name).read_bytes()
    path = tmp_path / name
    rng = random.Random(name)
    accepted = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy on the Python 2 header
        for label, data in variants(original, rng):
            path.write_bytes(data)
            assert outcome(records._directory, path) == outcome(records._read_directory, path), label
            accepted += fast(path) is not None
    assert accepted > 50  # the shortcut is taken where nothing that matters changed


def test_a_healthy_store_is_listed_without_zipfile_or_numpy(synthetic_store, monkeypatch):
    root, ids = synthetic_store
    for run_id in ids:
        for name in NPZ_FILES:
            assert fast(root / run_id / name) == records._read_directory(root / run_id / name)

    def slow(path):
        raise AssertionError(f"{path} was read the slow way")
    monkeypatch.setattr(records, "_read_directory", slow)
    listing = RunStore(root).list_runs()
    assert sorted(r.run_id for r in listing.runs) == sorted(ids) and listing.broken == []


# -- JSON --------------------------------------------------------------------------------------
def read_as_text(path: Path):
    """How a JSON file was read before: a text-mode read, then json.loads."""
    name = path.name
    try:
        with open(path, encoding="utf-8") as fh:
            return json.loads(fh.read(), parse_constant=lambda c: records._reject_constant(name, c))
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name} is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


@pytest.mark.parametrize("text", [
    b'{"a": 1,\r\n "b": [1, 2]}', b'{"a": 1,\r "b": \r\r x}', b'{"a": 1,\n "b": "x\r\ny"}', b"\xef\xbb\xbf{}",
    b'{"a": \xff}', b'{"a": "\xe2\x82"}', b'{"a": NaN}', b'{"a": -Infinity}', b"", b"  ", b'{"a": 1} x',
    b'{"a": 1e400}', b'[1, 2\r\n, 3]\r\n', b"\r\n\r\n{"])
def test_json_is_read_as_a_text_mode_read_reads_it(tmp_path, text):
    path = tmp_path / "history.json"
    path.write_bytes(text)
    try:
        expected = "ok", read_as_text(path)
    except RecordError as exc:
        expected = "error", str(exc)
    try:
        got = "ok", records._parse_json(path.name, records._read_text(str(path), path.name, len(text)))
    except RecordError as exc:
        got = "error", str(exc)
    assert got == expected


def test_integers_beyond_floats_or_too_long_to_read_make_a_broken_run_not_a_crash(synthetic_store, tmp_path):
    source, ids = synthetic_store
    root = tmp_path / "runs"
    for run_id in ids[:3]:
        shutil.copytree(source / run_id, root / run_id)
    metrics = root / ids[0] / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "val_loss": 10**400}))  # float() overflows
    metrics = root / ids[1] / "metrics.json"  # more digits than int() reads (sys.get_int_max_str_digits)
    metrics.write_text(metrics.read_text().replace('"params": ', '"params": 1' + "0" * 5000 + ', "x": '))
    listing = RunStore(root).list_runs()
    reasons = {b.run_id: b.reason for b in listing.broken}
    assert set(reasons) == set(ids[:2]) and len(listing.runs) == 1
    assert reasons[ids[0]].startswith("metrics.json.val_loss must be a finite number")
    assert reasons[ids[1]] == "metrics.json holds an integer too long to read"


# -- schemas -----------------------------------------------------------------------------------
VALUES = [0, 1, -1, 1.5, 0.0, -0.0, 1e308, float("inf"), float("nan"), 10**400, 2**63, True, False, None, "",
          "x", "finished", "last", "best_val_loss", [], {}, [1], {"a": 1}, "0" * 16, "a" * 5000, 3, 3.0,
          70_000, 70_001, 999, 1000, np.float64(0.5), np.int64(3)]


def mutated(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    node, parent, key = doc, None, None
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        parent, key = node, rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        node = node[key]
    if parent is None:
        return rng.choice(VALUES)
    choice = rng.random()
    if choice < 0.6:
        parent[key] = copy.deepcopy(rng.choice(VALUES))
    elif choice < 0.8:
        del parent[key]
    elif isinstance(parent, dict):
        parent[rng.choice(["zz", "migrated_from", "epoch"])] = rng.choice(VALUES)
    else:
        parent.append(copy.deepcopy(rng.choice(parent)))
    return doc


def typed(value):
    """``value`` with its types spelled out (1 and 1.0 differ; NaN equals NaN)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, repr(value)


@pytest.mark.parametrize("name", records.JSON_FILES)
def test_the_fast_schema_checks_accept_only_what_the_full_checks_accept(synthetic_store, name):
    root, ids = synthetic_store
    spec = records.SCHEMAS[name]
    rng = random.Random(name)
    accepted = 0
    for i in range(1500):
        doc = json.loads((root / ids[i % len(ids)] / name).read_text())
        if i % 5:
            doc = mutated(mutated(doc, rng) if i % 3 == 0 else doc, rng)
        try:
            full = "ok", typed(spec.slow(doc, name))
        except RecordError as exc:
            full = "error", str(exc)
        except OverflowError:
            full = "overflow", None
        try:
            quick = typed(spec.fast(doc))
        except records._Reject:  # not accepted outright: the full check decides (below)
            pass
        else:
            assert ("ok", quick) == full, doc
            accepted += 1
        try:
            assert ("ok", typed(spec(doc, name))) == full
        except RecordError as exc:
            assert ("error", str(exc)) == full
    assert accepted > 300
