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
    assert target.load(ids[1]).load_model().count_params() == 217_194
    assert import_bundle(target, payload) == ([], ids)  # a second import changes nothing


def assert_rejected(tmp_path, payload, message):
    target = RunStore(tmp_path / "target")
    before = snapshot(tmp_path)
    with pytest.raises(BundleError, match=message):
        import_bundle(target, payload)
    assert target.list_runs().runs == []
    assert snapshot(tmp_path) == before or set(snapshot(tmp_path)) - set(before) <= {"target", "target/.tmp"}


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
                     digits=np.zeros(1))
            return name, buffer.getvalue()
        return name, data

    assert_rejected(tmp_path, rebuild(payload, pickled), "not a plain .npz")


def test_a_run_whose_id_does_not_match_its_config_is_rejected(exported, tmp_path):
    _, ids, payload = exported

    def edited(name, data):
        if name == f"{ids[0]}/config.json":
            stored = json.loads(data)
            stored["config"]["epochs"] = 77
            return name, json.dumps(stored).encode()
        return name, data

    assert_rejected(tmp_path, rebuild(payload, edited), "hashes to another run id")


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
