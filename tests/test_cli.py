import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def cli(*args, store=None):
    extra = ["--store", str(store)] if store is not None else []
    return subprocess.run([sys.executable, "-m", "mnistlab", *args, *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)


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
        (("archs", "--task", "letters"), "--task must be one of digits, parity"),
        (("fly",), "invalid choice"),
    ],
)
def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, args, message):
    result = cli(*args, store=tmp_path) if args[0] in ("train", "show") else cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
