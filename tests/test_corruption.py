"""A damaged run never takes the library or the CLI down: the corruption matrix.

Every file of a run (config.json, history.json, metrics.json, predictions.npz, weights.npz)
is damaged in every way we can think of: missing, truncated, garbage, a field of the wrong
type, the wrong shape, or the same file copied in from another run. For each, the library
lists the run as broken with a reason that names the file (or, for damage only visible in
the array values, refuses to open the arrays with that reason), leaves the damaged folder
as it was, and every other run still loads. The CLI lists it and refuses to show it with one
line. The optional ``epochs.npz`` gets the same treatment (missing, it is simply absent). Known
bugs are strict xfails: they fail loudly once fixed, so the mark comes off. The pages are in
tests/app/test_broken_runs.py and benchmarks/faults.py runs all of it at once; both use the
helpers here.

The damaged stores are copies of the session's ``trained_store``, one fresh store per case.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnistlab import cli
from mnistlab.errors import BrokenRun, StoreError
from mnistlab.runs.config import canonical_json, id_of
from mnistlab.runs.store import STORE_FILE, RunStore
from tests.conftest import ROOT

#: The files every finished run has; ``epochs.npz`` (optional) has cases of its own below.
FILES = ("config.json", "history.json", "metrics.json", "predictions.npz", "weights.npz")
OPTIONAL = "epochs.npz"
VICTIM = "cnn"  # the run of trained_store that is damaged
DONOR = "mlp"  # the run whose files are copied in ("another run's file"): same task, same test set


# -- damage --------------------------------------------------------------------------------
def edit_json(change: Callable[[object], object]) -> Callable[[Path, Path], None]:
    """Damage: ``change`` the parsed document in place (or return a replacement), write it back."""
    def damage(path: Path, donor: Path) -> None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        replaced = change(doc)
        path.write_text(json.dumps(doc if replaced is None else replaced), encoding="utf-8")
    return damage


def edit_npz(**arrays: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path, Path], None]:
    """Damage: replace arrays of a plain .npz by ``arrays[name](old)``; a valid .npz stays."""
    def damage(path: Path, donor: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            values = {key: npz[key] for key in npz.files}
        for key, change in arrays.items():
            values[key] = change(values[key])
        buffer = io.BytesIO()
        np.savez(buffer, **values)
        path.write_bytes(buffer.getvalue())
    return damage


def set_field(*keys, value) -> Callable[[Path, Path], None]:
    def change(doc):
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value
    return edit_json(change)


def drop_field(*keys) -> Callable[[Path, Path], None]:
    def change(doc):
        for key in keys[:-1]:
            doc = doc[key]
        del doc[keys[-1]]
    return edit_json(change)


def missing(path: Path, donor: Path) -> None:
    path.unlink()


def truncated(path: Path, donor: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path, donor: Path) -> None:
    """As many bytes as the file had, none of them meaningful (deterministic)."""
    path.write_bytes(bytes((i * 197 + 89) % 256 for i in range(path.stat().st_size)))


def another_runs(path: Path, donor: Path) -> None:
    shutil.copyfile(donor / path.name, path)


def drop_array(key: str) -> Callable[[Path, Path], None]:
    def damage(path: Path, donor: Path) -> None:
        with np.load(path, allow_pickle=False) as npz:
            values = {k: npz[k] for k in npz.files if k != key}
        buffer = io.BytesIO()
        np.savez(buffer, **values)
        path.write_bytes(buffer.getvalue())
    return damage


def empty_test_set(path: Path, donor: Path) -> None:
    """Consistent but empty: n_test 0 and every test-set array cut to 0 images (a crafted run)."""
    folder = path.parent
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    metrics["n_test"] = 0
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    edit_npz(probabilities=lambda a: a[:0], labels=lambda a: a[:0], digits=lambda a: a[:0])(
        folder / "predictions.npz", donor)
    if (folder / OPTIONAL).is_file():
        edit_npz(classes=lambda a: a[:, :0], confidence=lambda a: a[:, :0])(folder / OPTIONAL, donor)


def edit_canonical(doc) -> None:
    doc["canonical"] = re.sub(r'"epochs":(\d+)', lambda m: f'"epochs":{int(m.group(1)) + 1}', doc["canonical"])


def gap_in_epochs(doc) -> None:
    del doc["epochs"][0]  # 2, 3, ...: the numbering has a gap (epochs_run no longer matches either)


@dataclass(frozen=True)
class Case:
    """One way to damage one file. ``stage``: "list" when listing the store finds it, "open"
    when only opening the arrays does (damage of the values, not of the layout), "fine" when
    the run stays whole (an optional file removed)."""

    file: str
    kind: str
    damage: Callable[[Path, Path], None]
    match: str  # a regular expression the reason matches (besides naming the file)
    stage: str = "list"
    marks: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.file}-{self.kind}"


KINDS = ("missing", "truncated", "garbage", "wrong-type", "wrong-shape", "another-run")
_COMMON = {
    "missing": (missing, "is missing"),
    "truncated": (truncated, "not valid JSON|not a readable plain .npz"),
    "garbage": (garbage, "not UTF-8|not valid JSON|not a readable plain .npz"),
    "another-run": (another_runs, "belongs to run|does not belong to run"),
}
_SPECIFIC = {  # file -> kind -> (damage, reason, stage)
    "config.json": {
        "wrong-type": (set_field("format", value="3"), r"format must be an integer", "list"),
        "wrong-shape": (edit_json(lambda doc: [doc]), "must be an object", "list"),
    },
    "history.json": {
        "wrong-type": (drop_field("epochs", 1, "seconds"), r"epochs\[1\] lacks seconds", "list"),
        "wrong-shape": (edit_json(gap_in_epochs), "without gaps", "list"),
    },
    "metrics.json": {
        "wrong-type": (set_field("test_accuracy", value="0.9"), "test_accuracy must be a finite number", "list"),
        "wrong-shape": (set_field("split", value=[225, 75]), "split must be an object", "list"),
    },
    "predictions.npz": {  # labels as floats take as many bytes as int64 ones: only the values show it
        "wrong-type": (edit_npz(labels=lambda a: a.astype(np.float64)), "labels must be integers", "open"),
        "wrong-shape": (edit_npz(probabilities=lambda a: a[:-1]), "wrong shape or type", "list"),
    },
    "weights.npz": {  # same bytes, another type / another shape: found when the weights are read
        "wrong-type": (edit_npz(w000=lambda a: a.astype(np.int32)), "w000 must be numbers", "open"),
        "wrong-shape": (edit_npz(w000=lambda a: a.reshape(a.shape[::-1])), "w000 must be numbers of shape", "open"),
    },
}
#: Damage to the values of arrays whose layout is right: found when the arrays are opened.
VALUE_CASES = [
    Case("predictions.npz", "nan", edit_npz(probabilities=lambda a: np.full_like(a, np.nan)), "finite", "open"),
    Case("predictions.npz", "rows-not-summing-to-1", edit_npz(probabilities=lambda a: np.full_like(a, 0.5)),
         "add up to 1", "open"),
    Case("predictions.npz", "labels-not-the-digits", edit_npz(labels=lambda a: (a + 1) % 10), "do not match the digits",
         "open"),
    Case("weights.npz", "nan", edit_npz(w002=lambda a: np.full_like(a, np.nan)), "finite", "open"),
    Case("weights.npz", "another-arch", edit_npz(arch=lambda a: np.array("mlp")), "not of 'cnn'", "open"),
]
#: More ways to break the layout, beyond the matrix.
EXTRA_CASES = [
    Case("config.json", "edited-config", set_field("config", "epochs", value=30), "do not match its canonical form"),
    Case("config.json", "edited-canonical", edit_json(edit_canonical), "hashes to another run id"),
    Case("config.json", "an-empty-file", lambda p, d: p.write_bytes(b""), "not valid JSON"),
    Case("config.json", "a-folder", lambda p, d: (p.unlink(), p.mkdir()), "config.json is a folder"),
    Case("metrics.json", "nan-literal", lambda p, d: p.write_text(p.read_text().replace(
        '"test_loss": ', '"test_loss": NaN, "x": '), encoding="utf-8"), "NaN"),
    Case("metrics.json", "kept-epoch-beyond-history", set_field("kept_epoch", value=9), "beyond the"),
    Case("metrics.json", "oversize", lambda p, d: p.write_text(" " * (65 * 1024) + "{}"), "at most 65,536"),
    Case("history.json", "deeply-nested", lambda p, d: p.write_text("[" * 100_000), "history.json",
         ),
    Case("metrics.json", "deeply-nested", lambda p, d: p.write_text('{"a":' * 10_000), "metrics.json",
         ),
    Case("config.json", "deeply-nested-canonical", set_field("canonical", value="[" * 3000), "config.json",
         ),
    Case("predictions.npz", "pickled", edit_npz(probabilities=lambda a: np.array([{"boom": 1}], dtype=object)),
         "wrong shape or type|not a readable"),
    Case("weights.npz", "an-array-too-few", drop_array("w007"), "lacks w007"),
    Case("metrics.json", "empty-test-set", empty_test_set, "n_test"),
]


#: The optional per-epoch answers: absent is fine (older runs); present, they are checked like the rest.
EPOCHS_CASES = [
    Case(OPTIONAL, "missing", missing, "", "fine"),
    Case(OPTIONAL, "truncated", truncated, "not a readable plain .npz"),
    Case(OPTIONAL, "garbage", garbage, "not a readable plain .npz"),
    Case(OPTIONAL, "wrong-type", edit_npz(confidence=lambda a: a.astype(np.float32)), "wrong shape or type"),
    Case(OPTIONAL, "wrong-shape", edit_npz(classes=lambda a: a[:-1], confidence=lambda a: a[:-1]),
         "wrong shape or type"),
    Case(OPTIONAL, "another-run", another_runs, "does not belong to run"),
    Case(OPTIONAL, "nan", edit_npz(confidence=lambda a: np.full_like(a, np.nan)), "finite", "open"),
    Case(OPTIONAL, "classes-beyond-the-task", edit_npz(classes=lambda a: np.full_like(a, 200)), "classes", "open"),
]
MATRIX = [Case(name, kind, *(_COMMON[kind] if kind in _COMMON else _SPECIFIC[name][kind][:2]),
               *(() if kind in _COMMON else _SPECIFIC[name][kind][2:]))
          for name in FILES for kind in KINDS]
CASES = MATRIX + VALUE_CASES + EXTRA_CASES + EPOCHS_CASES
assert len(MATRIX) == 30 and len({c.id for c in CASES}) == len(CASES)


# -- stores of copies ------------------------------------------------------------------------
def copy_runs(runs: dict, root: Path, names=None) -> Path:
    """Copies of trained runs (and the store marker, so nothing is migrated) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, run in runs.items():
        if names is None or name in names:
            shutil.copytree(run.path, root / run.run_id)
    marker = next(iter(runs.values())).path.parent / STORE_FILE
    if marker.is_file():
        shutil.copyfile(marker, root / STORE_FILE)
    return root


def clone_run(folder: Path, root: Path, seed: int, created: str | None = None) -> str:
    """A valid copy of the run in ``folder`` under another seed, so another id (every file
    re-keyed); ``created`` backdates it. Returns its id. Lets one store hold many damaged runs."""
    config_doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    form = json.loads(config_doc["canonical"])
    form["seed"] = seed
    text = canonical_json(form)
    run_id = id_of(text)
    config_doc["config"]["seed"] = seed
    config_doc.update(run_id=run_id, canonical=text, aliases=[])
    target = root / run_id
    target.mkdir(parents=True)
    (target / "config.json").write_text(json.dumps(config_doc), encoding="utf-8")
    for name in ("history.json", "metrics.json"):
        doc = json.loads((folder / name).read_text(encoding="utf-8"))
        doc["run_id"] = run_id
        if name == "metrics.json" and created is not None:
            doc["created"] = created
        (target / name).write_text(json.dumps(doc), encoding="utf-8")
    for name in (*FILES[3:], OPTIONAL):
        if not (folder / name).is_file():
            continue
        with np.load(folder / name, allow_pickle=False) as npz:
            values = {key: npz[key] for key in npz.files}
        values["run_id"] = np.array(run_id)
        np.savez(target / name, **values)
    return run_id


def damage_run(folder: Path, case: Case, donor: Path) -> None:
    case.damage(folder / case.file, donor)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """What a folder holds (a sub-folder as None), to show that reading changed nothing."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def damaged(trained_store, tmp_path, request):
    """A fresh store: copies of the three trained runs, the victim damaged by ``request.param``."""
    _, runs = trained_store
    case = request.param
    if not (runs[VICTIM].path / case.file).is_file():
        pytest.skip(f"the trained runs have no {case.file}")
    root = copy_runs(runs, tmp_path / "runs")
    damage_run(root / runs[VICTIM].run_id, case, runs[DONOR].path)
    return root, runs, case


def _reason_of(case: Case, root: Path, victim: str) -> str:
    store = RunStore(root)
    listing = store.list_runs()
    if case.stage == "list":
        broken = {b.run_id: b.reason for b in listing.broken}
        assert list(broken) == [victim], broken
        with pytest.raises(BrokenRun) as raised:
            store.load(victim)
        assert raised.value.reason == broken[victim]
        return broken[victim]
    assert listing.broken == []
    run = store.load(victim)
    arrays = {"predictions.npz": run.predictions, "weights.npz": run.weights, OPTIONAL: run.epochs}
    if case.stage == "fine":
        assert run.epochs() is None and run.weights() and run.predictions()
        return case.file
    with pytest.raises(BrokenRun) as raised:
        arrays.pop(case.file)()
    assert raised.value.run_id == victim
    for other in arrays.values():  # the run's other arrays are still fine
        other()
    return raised.value.reason


PARAMS = [pytest.param(c, id=c.id, marks=c.marks) for c in CASES]


@pytest.mark.parametrize("damaged", PARAMS, indirect=True)
def test_a_damaged_file_is_named_and_every_other_run_still_loads(damaged):
    root, runs, case = damaged
    victim = runs[VICTIM].run_id
    before = snapshot(root / victim)
    reason = _reason_of(case, root, victim)
    assert reason.strip() and case.file in reason, reason
    assert re.search(case.match, reason), reason
    assert len(reason) < 1200 and "\n" not in reason
    assert snapshot(root / victim) == before, "reading a broken run changed its folder"
    store = RunStore(root)
    healthy = [name for name in runs if name != VICTIM]
    listed = {runs[name].run_id for name in healthy} | ({victim} if case.stage != "list" else set())
    assert {r.run_id for r in store.list_runs().runs} == listed
    for name in healthy:  # untouched: the same record, the same arrays
        copy, original = store.load(runs[name].run_id), runs[name]
        assert copy.metrics == original.metrics and copy.history == original.history
        np.testing.assert_array_equal(copy.predictions().probabilities, original.predictions().probabilities)
        assert all(np.array_equal(a, b) for a, b in zip(copy.weights(), original.weights()))
        if original.has_epochs:
            np.testing.assert_array_equal(copy.epochs().classes, original.epochs().classes)


PARAMS = [pytest.param(c, id=c.id, marks=c.marks) for c in CASES]


@pytest.mark.parametrize("damaged", PARAMS, indirect=True)
def test_the_cli_in_process_lists_a_damaged_run_and_refuses_to_show_it(damaged, capsys):
    """Every case through ``mnistlab.cli.main`` (the subprocess tests below take a subset)."""
    root, runs, case = damaged
    victim = runs[VICTIM].run_id
    assert cli.main(["runs", "--json", "--store", str(root)]) == 0
    listed = json.loads(capsys.readouterr().out)
    broken = {b["run_id"]: b["reason"] for b in listed["broken"]}
    assert (victim in broken) == (case.stage == "list")
    assert len(listed["runs"]) == (2 if case.stage == "list" else 3)
    status = cli.main(["show", victim, "--store", str(root)])
    out, err = capsys.readouterr()
    if case.stage == "list":
        assert status == 1 and out == ""
        assert err.count("\n") == 1 and err.startswith(f"mnistlab: error: run {victim} is broken: "), err
        assert case.file in err
    else:  # show reads the JSON files, which are fine; the arrays are checked when opened
        assert status == 0 and err == ""
    assert cli.main(["show", runs[DONOR].run_id, "--store", str(root)]) == 0
    capsys.readouterr()


# -- the CLI as a person runs it --------------------------------------------------------------
#: One case per file, and every kind of damage once (each CLI call costs a process start).
CLI_CASES = [c for c in MATRIX if c.id in {
    "config.json-garbage", "history.json-wrong-shape", "metrics.json-wrong-type", "metrics.json-missing",
    "predictions.npz-truncated", "weights.npz-another-run"}]
assert {c.file for c in CLI_CASES} == set(FILES) and {c.kind for c in CLI_CASES} == set(KINDS)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnistlab", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnistlab: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cli_store(trained_store, tmp_path_factory):
    """The three trained runs and, beside them, one damaged copy (another seed, so another id) per CLI case."""
    _, runs = trained_store
    root = copy_runs(runs, tmp_path_factory.mktemp("cli") / "runs")
    damaged = {}
    for seed, case in enumerate(CLI_CASES, start=101):
        run_id = clone_run(runs[VICTIM].path, root, seed)
        damage_run(root / run_id, case, runs[DONOR].path)
        damaged[case.id] = run_id
    return root, runs, damaged


def test_cli_runs_lists_every_damaged_run_as_broken_and_exits_0(cli_store):
    root, runs, damaged = cli_store
    text = run_cli("runs", "--store", str(root))
    assert text.returncode == 0 and text.stderr == "", text.stderr
    lines = text.stdout.splitlines()
    for case in CLI_CASES:
        line = next((ln for ln in lines if ln.startswith(damaged[case.id])), None)
        assert line is not None and "broken: " in line and case.file in line, (case.id, text.stdout)
    for run in runs.values():
        assert any(ln.startswith(run.run_id) and "test acc" in ln for ln in lines)
    as_json = run_cli("runs", "--json", "--store", str(root))
    assert as_json.returncode == 0 and as_json.stderr == ""
    listed = json.loads(as_json.stdout)
    assert {b["run_id"] for b in listed["broken"]} == set(damaged.values())
    assert all(b["reason"] for b in listed["broken"])
    assert sorted(r["run_id"] for r in listed["runs"]) == sorted(r.run_id for r in runs.values())


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_show_of_a_damaged_run_exits_1_with_one_line_naming_the_reason(cli_store, case):
    root, _, damaged = cli_store
    result = run_cli("show", damaged[case.id], "--store", str(root))
    assert result.returncode == 1 and result.stdout == ""
    line = one_error_line(result)
    assert line.startswith(f"mnistlab: error: run {damaged[case.id]} is broken: ") and case.file in line, line


def test_cli_show_of_a_healthy_run_beside_damaged_ones_exits_0(cli_store):
    root, runs, _ = cli_store
    result = run_cli("show", runs[VICTIM].run_id, "--store", str(root))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"run {runs[VICTIM].run_id}: ") and "test accuracy" in result.stdout


# -- faults beyond a run's files ------------------------------------------------------------
def test_a_store_path_that_is_a_file_is_a_store_error_and_one_cli_line(tmp_path):
    path = tmp_path / "runs"
    path.write_text("not a folder")
    with pytest.raises(StoreError, match=re.escape(str(path))):
        RunStore(path).list_runs()
    result = run_cli("runs", "--store", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert str(path) in one_error_line(result)
    assert path.read_text() == "not a folder"


def test_a_run_folder_that_cannot_be_read_is_listed_as_broken(trained_store, tmp_path):
    """chmod does not stop root: a folder where config.json should be is what cannot be read."""
    _, runs = trained_store
    root = copy_runs(runs, tmp_path / "runs")
    victim = root / runs[VICTIM].run_id
    (victim / "config.json").unlink()
    (victim / "config.json").mkdir()
    (root / "0123456789abcdef").mkdir()  # an empty run folder
    listing = RunStore(root).list_runs()
    reasons = {b.run_id: b.reason for b in listing.broken}
    assert set(reasons) == {runs[VICTIM].run_id, "0123456789abcdef"}
    assert "config.json" in reasons[runs[VICTIM].run_id] and "config.json" in reasons["0123456789abcdef"]
    assert len(listing.runs) == 2
    assert cli.main(["runs", "--store", str(root)]) == 0


def test_a_deeply_nested_store_marker_does_not_stop_the_listing(trained_store, tmp_path):
    _, runs = trained_store
    root = copy_runs(runs, tmp_path / "runs")
    (root / STORE_FILE).write_text("[" * 100_000)
    assert len(RunStore(root).list_runs().runs) == 3
