import io
import json
import os
import zipfile

import numpy as np
import pytest

from mnistlab.runs import bundles as bundle
from mnistlab.runs.bundles import BundleError, export_bundle, import_bundle
from mnistlab.runs.store import RunStore
from mnistlab.settings import ReadOnlyError, Settings


@pytest.fixture(scope="module")
def exported(trained_store):
    store, runs = trained_store
    ids = [runs["mlp"].run_id, runs["cnn"].run_id]
    return store, ids, export_bundle(store, ids)


def snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def rebuild(payload: bytes, change) -> bytes:
    """Copy a bundle, letting ``change(name, data)`` return new (name, data) or None to drop it."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            changed = change(info.filename, src.read(info))
            if changed is not None:
                dst.writestr(changed[0], changed[1])
    return out.getvalue()


def test_export_then_import_round_trips_into_an_empty_store(exported, tmp_path):
    source, ids, payload = exported
    target = RunStore(tmp_path / "other")
    imported, present = import_bundle(target, payload)
    assert sorted(imported) == sorted(ids) and present == []
    for run_id in ids:
        a, b = source.load(run_id), target.load(run_id)
        assert a.history == b.history and a.metrics == b.metrics
        np.testing.assert_array_equal(a.predictions().probabilities, b.predictions().probabilities)
    assert target.load(ids[1]).build_model().count_params() == 217_194
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:  # weights as plain arrays, no model files
        assert {name.split("/")[-1] for name in archive.namelist()} == {
            "mnistlab-bundle.json", "config.json", "history.json", "metrics.json", "predictions.npz", "weights.npz",
            "epochs.npz"}
    assert import_bundle(target, payload) == ([], ids)  # a second import changes nothing


def assert_rejected(tmp_path, payload, message):
    target = RunStore(tmp_path / "target")
    before = snapshot(tmp_path)
    with pytest.raises(BundleError, match=message):
        import_bundle(target, payload)
    assert target.list_runs().runs == []
    assert snapshot(tmp_path) == before or set(snapshot(tmp_path)) - set(before) <= {"target", "target/.tmp", "target/store.json"}


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/cron.d/evil", "0123456789abcdef/../../x.json",
                                  "0123456789abcdef/run.sh"])
def test_zip_slip_and_unknown_entries_are_rejected(exported, tmp_path, evil):
    _, _, payload = exported
    buffer = io.BytesIO(payload)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(evil, b"owned")
    assert_rejected(tmp_path, buffer.getvalue(), "unexpected entry")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "x.json").exists()


def test_a_pickled_npz_is_rejected(exported, tmp_path):
    _, ids, payload = exported

    def pickled(name, data):
        if name == f"{ids[0]}/predictions.npz":
            buffer = io.BytesIO()
            np.savez(buffer, probabilities=np.array([{"boom": 1}], dtype=object), labels=np.zeros(1),
                     digits=np.zeros(1), run_id=np.array(ids[0]))
            return name, buffer.getvalue()
        return name, data

    assert_rejected(tmp_path, rebuild(payload, pickled), "not a readable plain .npz|wrong shape or type")


def test_a_run_whose_id_does_not_match_its_config_is_rejected(exported, tmp_path):
    _, ids, payload = exported

    def edited(name, data):
        if name == f"{ids[0]}/config.json":
            stored = json.loads(data)
            stored["config"]["epochs"] = 77
            return name, json.dumps(stored).encode()
        return name, data

    assert_rejected(tmp_path, rebuild(payload, edited), "do not match its canonical form")


def test_oversize_and_non_zip_bundles_are_rejected(exported, tmp_path, monkeypatch):
    _, _, payload = exported
    monkeypatch.setattr(bundle, "MAX_BUNDLE_BYTES", 1000)
    assert_rejected(tmp_path, payload, "larger than")
    monkeypatch.undo()
    assert_rejected(tmp_path, b"this is not a zip", "not a zip file")
    assert_rejected(tmp_path, rebuild(payload, lambda n, d: (n, d) if n == bundle.MANIFEST else None), "no runs")


def test_a_read_only_store_refuses_imports(exported, tmp_path):
    _, _, payload = exported
    with pytest.raises(ReadOnlyError):
        import_bundle(RunStore(tmp_path / "ro", settings=Settings(read_only=True)), payload)
    assert not os.path.exists(tmp_path / "ro")


def _json_edit(run_id, name, change):
    def edit(entry, data):
        if entry == f"{run_id}/{name}":
            doc = json.loads(data)
            change(doc)
            return entry, json.dumps(doc).encode()
        return entry, data
    return edit


def _npz_edit(owner, name, **arrays):
    def edit(entry, data):
        if entry == f"{owner}/{name}":
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                values = {k: npz[k] for k in npz.files}
            values.update(arrays)
            buffer = io.BytesIO()
            np.savez(buffer, **values)
            return entry, buffer.getvalue()
        return entry, data
    return edit


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize("name, change, message", [
    ("metrics.json", _set(["test_accuracy"], None), "a finished run needs test_accuracy"),
    ("metrics.json", _set(["test_accuracy"], "0.99"), "test_accuracy must be a finite number"),
    ("metrics.json", _set(["data", "title"], "x" * 5000), "data.title must be a text of at most 200"),
    ("metrics.json", _set(["run_id"], "0123456789abcdef"), "belongs to run 0123456789abcdef"),
    ("history.json", lambda doc: doc["epochs"][0].pop("seconds"), r"epochs\[0\] lacks seconds"),
    ("history.json", _set(["epochs", 0, "loss"], "NaN"), "loss must be a finite number"),
    ("config.json", _set(["aliases"], ["../../etc"]), "aliases"),
])
def test_a_hostile_but_well_formed_file_is_refused_with_its_reason(exported, tmp_path, name, change, message):
    _, ids, payload = exported
    assert_rejected(tmp_path, rebuild(payload, _json_edit(ids[0], name, change)), message)


@pytest.mark.parametrize("name, arrays, message", [
    ("predictions.npz", {"probabilities": np.full((1000, 10), np.nan, np.float32)}, "finite"),
    ("predictions.npz", {"probabilities": np.zeros((999, 10), np.float32)}, "wrong shape"),
    ("predictions.npz", {"probabilities": np.full((1000, 10), 0.5, np.float32)}, "add up to 1"),
    ("predictions.npz", {"run_id": np.array("0123456789abcdef")}, "does not belong"),
    ("weights.npz", {"w000": np.zeros((3, 3), np.float32)}, "wrong shape"),
    ("weights.npz", {"arch": np.array("cnn")}, "not of 'mlp'"),
])
def test_arrays_of_the_wrong_shape_values_or_run_are_refused(exported, tmp_path, name, arrays, message):
    _, ids, payload = exported
    assert_rejected(tmp_path, rebuild(payload, _npz_edit(ids[0], name, **arrays)), message)


def test_a_truncated_array_file_is_refused(exported, tmp_path):
    _, ids, payload = exported
    cut = rebuild(payload, lambda n, d: (n, d[: len(d) // 2]) if n == f"{ids[0]}/predictions.npz" else (n, d))
    assert_rejected(tmp_path, cut, "not a readable plain .npz")


def test_a_small_bundle_that_unpacks_to_a_flood_is_refused_before_it_lands(exported, tmp_path):
    _, ids, payload = exported
    flood = b"[" + b"0," * (3 * 1024 * 1024) + b"0]"  # 6 MB of JSON that compresses to a few KB
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ids[0]}/history.json", flood)
    assert len(out.getvalue()) < 100_000
    assert_rejected(tmp_path, out.getvalue(), "history.json may hold at most")


def test_an_entry_that_unpacks_to_more_than_its_header_says_is_stopped(exported, tmp_path):
    _, ids, payload = exported
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ids[0]}/metrics.json", b" " * (2 * 1024 * 1024))
    data = bytearray(out.getvalue())
    # Lie about the size in both headers: 2 MB claimed as 100 bytes.
    real = (2 * 1024 * 1024).to_bytes(4, "little")
    data = bytes(data).replace(real, (100).to_bytes(4, "little"))
    with pytest.raises(BundleError):
        import_bundle(RunStore(tmp_path / "target"), data)
    assert RunStore(tmp_path / "target").list_runs().runs == []


def _corrupt_crc(payload):
    """Flip one byte inside every entry's stored data: a CRC (or inflate) error when read."""
    data = bytearray(payload)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for info in archive.infolist():
            offset = info.header_offset
            name_len = int.from_bytes(data[offset + 26:offset + 28], "little")
            extra_len = int.from_bytes(data[offset + 28:offset + 30], "little")
            start = offset + 30 + name_len + extra_len
            if info.compress_size > 2:
                data[start + info.compress_size // 2] ^= 0xFF
    return bytes(data)


def _encrypted(payload):
    data = bytearray(payload)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] |= 0x1
            start += 4
    return bytes(data)


def _unknown_compression(payload):
    data = bytearray(payload)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset] = 99
            start += 4
    return bytes(data)


@pytest.mark.parametrize("damage", [
    lambda p: p[: len(p) // 2],
    lambda p: p[:-10],
    _corrupt_crc,
    _encrypted,
    _unknown_compression,
    lambda p: b"PK\x05\x06" + b"\x00" * 18,
], ids=["half", "tail-cut", "bad-crc", "encrypted", "unknown-compression", "empty-directory"])
def test_every_kind_of_malformed_zip_is_a_bundle_error_and_changes_nothing(exported, tmp_path, damage):
    _, _, payload = exported
    target = RunStore(tmp_path / "target")
    with pytest.raises(BundleError):
        import_bundle(target, damage(payload))
    assert target.list_runs().runs == []
    assert not any((tmp_path / "target" / ".tmp").glob("import-*"))


def test_importing_a_bundle_never_imports_tensorflow(exported, tmp_path):
    from tests.conftest import run_python

    _, _, payload = exported
    (tmp_path / "b.zip").write_bytes(payload)
    result = run_python(
        "import sys\n"
        "from mnistlab.runs.store import RunStore\n"
        "from mnistlab.runs.bundles import import_bundle\n"
        f"print(import_bundle(RunStore({str(tmp_path / 'store')!r}), {str(tmp_path / 'b.zip')!r})[0] != [])\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "[]"]
