"""Shared fixtures: a fresh store per test, tiny real training on the shipped sample.

Tests never touch the network: the data source defaults to the shipped sample and
downloads are switched off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["MNISTLAB_OFFLINE"] = "1"
os.environ["MNISTLAB_DATA"] = "sample"
os.environ.pop("MNISTLAB_MNIST", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnistlab import RunConfig, RunStore  # noqa: E402


def tiny_config(**changes) -> RunConfig:
    """A run that really trains in about a second: 300 sample images, fraction validation."""
    values = dict(task="digits", arch="mlp", epochs=2, batch_size=32, train_size=300,
                  validation="fraction", data="sample")
    values.update(changes)
    return RunConfig(**values)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path, monkeypatch):
    """No test writes into the project's own cache/."""
    monkeypatch.setenv("MNISTLAB_STORE", str(tmp_path / "default-store"))


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory):
    """A store with tiny real runs: mlp and cnn on digits, cnn on parity."""
    store = RunStore(tmp_path_factory.mktemp("trained") / "runs")
    runs = {
        "mlp": store.get_or_train(tiny_config(arch="mlp", epochs=3)).run,
        "cnn": store.get_or_train(tiny_config(arch="cnn", epochs=3)).run,
        "cnn_parity": store.get_or_train(tiny_config(arch="cnn", task="parity", epochs=2)).run,
    }
    return store, runs


def run_python(code: str, env: dict | None = None, timeout: float = 120):
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
