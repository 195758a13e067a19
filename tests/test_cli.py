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


def test_archs_lists_forward_flops_per_image():
    table = {row["arch"]: row for row in json.loads(cli("archs", "--task", "digits", "--json").stdout)}
    assert table["mlp"]["flops"] == 2 * (784 * 256 + 256 * 256 + 256 * 256 + 256 * 10)
    assert table["cnn"]["flops"] == 3_034_368
    text = cli("archs", "--task", "digits").stdout
    assert "3.03 MFLOPs" in text and "0.67 MFLOPs" in text


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


# -- the first hour: what a new user meets ----------------------------------------------------
def test_training_keeps_tensorflows_start_up_chatter_from_the_user(tmp_path):
    result = cli("train", "--data", "sample", "--arch", "mlp", "--epochs", "1", "--train-size", "300",
                 "--validation", "fraction", store=tmp_path)
    assert result.returncode == 0, result.stderr
    for chatter in ("absl::InitializeLog", "oneDNN", "cpu_feature_guard", "retracing", "I0000"):
        assert chatter not in result.stdout + result.stderr
    header = result.stdout.splitlines()[0]
    assert header.startswith("mlp · digits · sgd · ") and "lr 0.01 (default)" in header
    shown = cli("show", result.stdout.split("run ")[-1].split()[0], store=tmp_path).stdout
    assert "None" not in shown
    assert "learning_rate    0.01 (sgd's default)" in shown and "patience         none (no early stopping)" in shown


def test_a_file_that_is_not_an_npz_says_what_an_mnist_file_holds(tmp_path):
    not_npz = tmp_path / "hostname"
    not_npz.write_text("my-machine\n")
    result = cli("train", "--data", str(not_npz), store=tmp_path / "store")
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.endswith("not an MNIST .npz file (expected x_train, y_train, x_test, y_test; it is not an .npz "
                         "(zip) archive)")
    assert "allow_pickle" not in line and "BadZipFile" not in line


def test_a_training_set_smaller_than_one_batch_is_refused_with_the_reason(tmp_path):
    result = cli("train", "--data", "sample", "--arch", "mlp", "--train-size", "20", "--batch-size", "64",
                 "--validation", "fraction", store=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result) == ("mnistlab: error: the training set (15 images) is smaller than one batch "
                                      "(64): lower the batch size to at most 15, or train on more images")


def test_without_internet_the_data_note_is_calm_and_says_how_to_get_full_mnist(tmp_path, monkeypatch, capsys):
    import urllib.error
    import urllib.request

    from mnistlab.datasets import mnist

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(mnist, "_download_failure", None)
    monkeypatch.setenv("MNISTLAB_OFFLINE", "0")
    monkeypatch.setenv("MNISTLAB_DATA", "auto")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    reason = mnist.resolve_source("auto").reason
    assert "no internet connection, so Keras' copy could not be downloaded" in reason
    assert "URLError" not in reason and "Errno" not in reason
    # refused after the note (a batch larger than the training set): nothing trains
    status = cli_module.main(["train", "--arch", "mlp", "--train-size", "20", "--batch-size", "64", "--validation",
                              "fraction", "--store", str(tmp_path / "store")])
    assert status == 2
    err = capsys.readouterr().err
    note = next(line for line in err.splitlines() if line.startswith("note: "))
    assert "no internet connection" in note and "shipped sample is used" in note
    assert "MNISTLAB_MNIST=/path/to/mnist.npz" in note and "--data" in note


@pytest.mark.parametrize("command", ["runs", "show", "report", "export", "import", "delete", "doctor", "archs",
                                     "train"])
def test_every_command_that_prints_a_table_takes_json(command):
    assert "--json" in cli(command, "--help").stdout


def test_serve_help_names_its_options_and_defaults():
    text = " ".join(cli("serve", "--help").stdout.split())
    assert "--port PORT port to listen on (default: 8501)" in text
    assert "default: 127.0.0.1, this machine only" in text and "--read-only" in text
