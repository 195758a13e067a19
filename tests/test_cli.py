import json
import os
import subprocess
import sys

import pytest

from mnistlab import cli as cli_module
from mnistlab.errors import (
    BrokenRun,
    BundleError,
    ConfigError,
    DataError,
    LimitError,
    MnistlabError,
    ReadOnlyError,
    StoreError,
)
from mnistlab.runs.config import FIELDS, arch_field
from tests.conftest import ROOT


def cli(*args, store=None):
    extra = ["--store", str(store)] if store is not None else []
    env = {**os.environ, "COLUMNS": "1000"}  # help on one line per option
    return subprocess.run([sys.executable, "-m", "mnistlab", *args, *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env=env)


def one_error_line(result) -> str:
    """The one line a failed command prints on stderr (and nothing else there)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnistlab: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_train_prints_epochs_then_says_cached_the_second_time(tmp_path):
    args = ("train", "--data", "sample", "--arch", "cnn", "--epochs", "2", "--train-size", "300",
            "--validation", "fraction")
    first = cli(*args, store=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[1].startswith("epoch   1/2") and lines[2].startswith("epoch   2/2")
    assert lines[-1].startswith("trained: run ")
    second = cli(*args, "--json", store=tmp_path)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "cached" and result["config"]["arch"] == "cnn"
    assert 0 <= result["metrics"]["test_accuracy"] <= 1

    runs = json.loads(cli("runs", "--json", store=tmp_path).stdout)
    assert [r["run_id"] for r in runs["runs"]] == [result["run_id"]] and runs["broken"] == []
    shown = json.loads(cli("show", result["run_id"], "--json", store=tmp_path).stdout)
    assert len(shown["history"]) == 2 and shown["config"] == result["config"]
    text = cli("show", result["run_id"], store=tmp_path).stdout
    assert "test accuracy" in text
    assert cli("delete", "0123456789abcdef", store=tmp_path).returncode == 2  # unknown: nothing deleted
    deleted = cli("delete", result["run_id"], "--json", store=tmp_path)
    assert json.loads(deleted.stdout) == {"deleted": [result["run_id"]]}
    assert json.loads(cli("runs", "--json", store=tmp_path).stdout)["runs"] == []


def test_archs_json_lists_parameter_counts():
    out = cli("archs", "--task", "digits", "--json")
    table = json.loads(out.stdout)
    assert {row["arch"]: row["params"] for row in table}["cnn"] == 217_194
    assert all(row["task"] == "digits" for row in table)


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--epochs", "0"), "epochs must be an integer in [1, 1000], got 0"),
        (("train", "--optimizer", "lbfgs"), "optimizer must be one of"),
        (("train", "--data", "/no/such.npz"), "no such file"),
        (("show", "../../etc/passwd"), "run id must be 16 hexadecimal digits"),
        (("show", "0123456789abcdef"), "no run 0123456789abcdef"),
        (("archs", "--task", "letters"), "--task must be one of 'digits', 'parity', got 'letters'"),
        (("fly",), "invalid choice"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, args, message):
    result = cli(*args, store=tmp_path) if args[0] in ("train", "show") else cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# -- train's options come from the table of fields ------------------------------------------
def test_train_help_lists_each_options_allowed_values_and_default():
    result = cli("train", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for name, field in FIELDS.items():
        field = arch_field() if name == "arch" else field
        default = field.unset if field.default is None else field.default
        metavar = "{" + ",".join(field.choices) + "}" if field.kind == "choice" else ""
        option = "--" + name.replace("_", "-")
        assert f"{option} {metavar}".strip() in text
        assert f"{field.allowed} (default: {default})" in text, name
    for option in ("--data", "--store", "--json"):
        assert option in text


@pytest.mark.parametrize("command", ["train", "runs", "show", "report", "export", "import", "delete", "archs"])
def test_help_never_says_none(command):
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "None" not in result.stdout + result.stderr


def _bad(field):
    return "nope" if field.kind == "choice" else int(field.hi) + 1


@pytest.mark.parametrize("name", [name for name in FIELDS if name != "validation_size"])
def test_a_bad_train_value_exits_2_with_the_tables_message(tmp_path, name):
    field = arch_field() if name == "arch" else FIELDS[name]
    value = _bad(field)
    result = cli("train", "--" + name.replace("_", "-"), str(value), store=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == f"mnistlab: error: {name} must be {field.allowed}, got {value!r}"
    assert not list(tmp_path.iterdir())  # refused before the store was touched


def test_a_validation_size_beyond_its_scheme_exits_2_without_saying_none(tmp_path):
    result = cli("train", "--validation", "test", "--validation-size", "100", store=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "validation_size must be left unset" in line and "None" not in line


def test_a_store_that_is_a_file_exits_1_with_one_line(tmp_path):
    not_a_folder = tmp_path / "runs.txt"
    not_a_folder.write_text("not a store")
    result = cli("runs", store=not_a_folder)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(not_a_folder) in line and "folder" in line


def test_show_of_a_broken_run_exits_1_naming_the_reason(tmp_path):
    run_id = "0123456789abcdef"
    (tmp_path / run_id).mkdir()
    (tmp_path / run_id / "config.json").write_text("{not json")
    result = cli("show", run_id, store=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"run {run_id} is broken: " in line and len(line) > len(f"mnistlab: error: run {run_id} is broken: ")


@pytest.mark.parametrize(
    "error, status",
    [
        (ConfigError("epochs must be an integer in [1, 1000], got 0"), 2),
        (LimitError("epochs must be at most 5 on this instance, got 30"), 2),
        (DataError("/x.npz: no such file"), 2),
        (BundleError("the bundle is not a zip file"), 2),
        (ValueError("run id must be 16 hexadecimal digits, got 'x'"), 2),
        (StoreError("writing run 0123456789abcdef failed at /store: the disk is full"), 1),
        (BrokenRun("0123456789abcdef", "missing metrics.json"), 1),
        (ReadOnlyError("this instance is read-only"), 1),
        (MnistlabError("something else mnistlab cannot do"), 1),
        (OSError(28, "No space left on device"), 1),
        (RuntimeError("a bug\nover two lines"), 1),
    ],
)
def test_usage_errors_exit_2_and_failures_exit_1_with_one_line(monkeypatch, capsys, error, status):
    def fail(args):
        raise error

    monkeypatch.setattr(cli_module, "cmd_archs", fail)
    assert cli_module.main(["archs"]) == status
    err = capsys.readouterr().err
    assert err.startswith("mnistlab: error: ") and err.count("\n") == 1 and "Traceback" not in err
