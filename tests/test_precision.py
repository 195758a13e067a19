"""The ``precision`` field: bfloat16 (Keras' mixed_bfloat16) beside the recipes' float32.

A bfloat16 run is another run (its own id) that really trains; float32 runs keep the ids they
had before the field existed; the mixed policy never leaks into another model of the process;
bfloat16 is offered and launched only where the CPU computes it natively; the field travels
through share links, the CLI and Compare's table like every other field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnistlab import cli as cli_module
from mnistlab.datasets.mnist import SourceInfo, load_source, resolve_source
from mnistlab.errors import ConfigError
from mnistlab.runs import checks
from mnistlab.runs.config import FIELDS, LATER_FIELDS, RunConfig, canonical_json, resolve
from mnistlab.views.share import decode_config, encode_config
from tests.conftest import tiny_config

LACKS = "this CPU lacks AVX512_BF16 and AMX: bfloat16 would be emulated and slower"
SOURCE = SourceInfo("file", "/data/mnist.npz", "fp", "a test source", n_train=60_000, n_test=10_000)

#: Ids computed with the code from before the precision field existed: they must never change.
PINNED = [
    (RunConfig(), "93de4fc62267b957"),
    (RunConfig(arch="deep_cnn", optimizer="adam", batch_size=200, epochs=5, validation="fraction", patience=3,
               seed=7), "6dd7408860308f60"),
    (RunConfig(arch="mlp", task="parity", train_size=1000, validation="test", learning_rate=0.05),
     "eb451b12218fe218"),
]
PINNED_CANONICAL = ('{"arch":"cnn","batch_size":32,"data":"fp","epochs":30,"learning_rate":0.01,"optimizer":"sgd",'
                    '"patience":null,"schema":3,"seed":0,"task":"digits","train_size":50000,'
                    '"validation":"holdout","validation_size":10000}')


@pytest.fixture
def unsupported(monkeypatch):
    """A CPU without bfloat16 arithmetic, as every caller of checks.bf16_supported sees it."""
    monkeypatch.setattr(checks, "bf16_supported", lambda: (False, LACKS))


# -- the field and the run id ------------------------------------------------------------
def test_precision_is_a_later_field_of_the_table():
    field = FIELDS["precision"]
    assert (field.kind, field.default, field.choices, field.link) == ("choice", "float32", ("float32", "bfloat16"),
                                                                      "pr")
    assert field.help and "precision" in LATER_FIELDS
    assert RunConfig().precision == "float32"
    assert RunConfig(precision=" BFloat16 ").precision == "bfloat16"
    with pytest.raises(ConfigError, match="precision must be one of 'float32', 'bfloat16', got 'float16'"):
        RunConfig(precision="float16")


@pytest.mark.parametrize("config, run_id", PINNED)
def test_float32_runs_keep_the_ids_they_had_before_the_field(config, run_id):
    assert resolve(config, SOURCE).run_id == run_id
    assert resolve(config.replace(precision="float32"), SOURCE).run_id == run_id


def test_float32_canonical_form_is_unchanged_and_bfloat16_adds_the_field():
    float32 = resolve(RunConfig(), SOURCE)
    assert float32.canonical_json == PINNED_CANONICAL and "precision" not in float32.canonical
    bf16 = resolve(RunConfig(precision="bfloat16"), SOURCE)
    assert bf16.canonical == {**json.loads(PINNED_CANONICAL), "precision": "bfloat16"}
    assert bf16.run_id != float32.run_id
    assert canonical_json(bf16.canonical) == bf16.canonical_json


def test_the_tiny_sample_runs_keep_their_ids():
    assert resolve(tiny_config()).run_id == "16b92f5a7f435291"
    assert resolve(tiny_config(arch="cnn")).run_id == "03d6209c3ae277f3"


def test_the_label_says_bf16():
    assert RunConfig(precision="bfloat16").label() == "cnn · digits · sgd · bs32 · 30ep · bf16"
    assert "bf16" not in RunConfig().label()


def test_a_share_link_carries_precision_both_ways():
    bf16 = tiny_config(arch="cnn", precision="bfloat16")
    text = encode_config(bf16)
    assert "pr:bfloat16" in text.split("~")
    assert decode_config(text, data="sample") == bf16
    assert "pr:" not in encode_config(tiny_config())  # the default is left out, as for every field
    with pytest.raises(ValueError, match="precision must be one of"):
        decode_config("cnn~pr:float64")


# -- CPU support ------------------------------------------------------------------------
@pytest.mark.parametrize("flags, ok, reason", [
    ("fpu sse2 avx512f avx512_bf16 amx_tile", True, "this CPU has avx512_bf16"),
    ("fpu avx512f amx_bf16 amx_tile avx512_bf16", True, "this CPU has avx512_bf16 and amx_bf16"),
    ("fpu sse2 avx2 avx512f", False, LACKS),
])
def test_bf16_support_is_read_from_the_cpu_flags(tmp_path, monkeypatch, flags, ok, reason):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                       f"flags\t\t: {flags}\n")
    monkeypatch.setattr(checks, "CPUINFO", cpuinfo)
    assert checks.bf16_supported() == (ok, reason)


def test_without_cpuinfo_bf16_is_not_offered(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "CPUINFO", tmp_path / "missing")
    ok, reason = checks.bf16_supported()
    assert not ok and "/proc/cpuinfo" in reason


def test_a_bfloat16_launch_on_a_cpu_without_it_is_refused_with_the_reason(unsupported):
    resolved = resolve(tiny_config(precision="bfloat16"))
    checked = checks.preflight(resolved)
    assert not checked.ok
    assert checked.errors == [f"precision bfloat16 is not offered here: {LACKS}; train in float32"]
    with pytest.raises(ConfigError, match="AVX512_BF16 and AMX"):
        checks.check_precision(resolved.explicit)
    assert checks.preflight(resolve(tiny_config())).ok  # float32 is always fine
    checks.check_precision(tiny_config())


def test_the_cli_refuses_bfloat16_on_a_cpu_without_it(unsupported, tmp_path, capsys):
    for command in (["train", "--arch", "mlp", "--train-size", "300", "--validation", "fraction"],
                    ["sweep", "--arch", "mlp", "--epochs", "1", "--train-size", "300", "--validation", "fraction"]):
        status = cli_module.main([*command, "--precision", "float32,bfloat16" if command[0] == "sweep" else
                                  "bfloat16", "--data", "sample", "--store", str(tmp_path / "store")])
        assert status == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("mnistlab: error: precision bfloat16 is not offered here") and LACKS in error
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").glob("[0-9a-f]*"))


def test_the_cli_offers_precision_in_help(capsys):
    for command in ("train", "sweep"):
        with pytest.raises(SystemExit):
            cli_module.main([command, "--help"])
        out = capsys.readouterr().out
        assert "--precision" in out and "{float32,bfloat16}" in out


# -- training ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bf16_pair(tmp_path_factory):
    """A tiny cnn trained in bfloat16 and its float32 twin, in one store (the bf16 one first).

    Adam for 3 epochs: it learns from 300 images (SGD at 0.01 barely moves in 2 epochs)."""
    from mnistlab import RunStore

    store = RunStore(tmp_path_factory.mktemp("precision") / "runs")
    twin = tiny_config(arch="cnn", optimizer="adam", epochs=3)
    bf16 = store.get_or_train(twin.replace(precision="bfloat16")).run
    float32 = store.get_or_train(twin).run
    return store, bf16, float32


def test_a_bfloat16_run_has_its_own_id_and_really_trains(bf16_pair):
    store, bf16, float32 = bf16_pair
    assert bf16.run_id != float32.run_id
    assert "precision" not in float32.canonical  # the float32 twin's form is the one from before the field
    assert float32.canonical == {k: v for k, v in bf16.canonical.items() if k != "precision"}
    assert bf16.config.precision == "bfloat16" and bf16.canonical["precision"] == "bfloat16"
    assert bf16.is_finished and len(bf16.history) == 3
    assert bf16.history[-1]["loss"] < bf16.history[0]["loss"] - 0.3  # it learns
    assert bf16.metrics["test_accuracy"] > 0.4  # 300 images, 3 epochs: well above chance (0.1); float32 ~0.62
    assert abs(bf16.metrics["test_accuracy"] - float32.metrics["test_accuracy"]) < 0.1
    assert all(w.dtype == np.float32 for w in bf16.weights())
    assert bf16.predictions().probabilities.dtype == np.float32
    rows = {row["run_id"]: row for row in store.runs_frame().to_dict("records")}
    assert rows[bf16.run_id]["precision"] == "bfloat16" and rows[float32.run_id]["precision"] == "float32"
    assert "bf16" in rows[bf16.run_id]["label"]


def test_the_numpy_engine_reproduces_a_bfloat16_runs_stored_predictions(bf16_pair):
    from mnistlab.models.engine import Engine

    _, bf16, _ = bf16_pair
    data = load_source(resolve_source("sample"))
    stored = bf16.predictions().probabilities
    got = Engine.from_run(bf16).predict(data.x_test)  # float32 maths on the float32 weights
    # bfloat16 keeps 8 significant bits (~0.4 %): the stored probabilities were computed with it
    np.testing.assert_allclose(got, stored, atol=0.03)
    assert np.mean(got.argmax(1) == stored.argmax(1)) >= 0.98


def test_the_mixed_policy_does_not_leak_into_other_models(bf16_pair):
    import keras

    from mnistlab.models.architectures import build_model

    assert keras.config.dtype_policy().name == "float32"
    for arch in ("cnn", "deep_cnn", "mlp"):
        model = build_model(arch, "digits")
        assert {layer.compute_dtype for layer in model.layers} == {"float32"}
        mixed = build_model(arch, "digits", "bfloat16")
        assert {layer.compute_dtype for layer in mixed.layers[:-1]} == {"bfloat16"}
        assert mixed.layers[-1].compute_dtype == "float32"  # the output layer: a float32 softmax
        assert {layer.variable_dtype for layer in mixed.layers} == {"float32"}
        assert mixed(np.zeros((1, *model.input_shape[1:]), np.float32)).dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_the_float32_twin_trained_after_a_bf16_run_is_the_same_as_one_trained_alone():
    """The twin's stored accuracy equals a float32 training in a fresh model (same seed, same maths)."""
    from mnistlab.models.training import train

    data = load_source(resolve_source("sample"))
    config = resolve(tiny_config(arch="cnn", epochs=1)).explicit
    alone = train(config, data)
    train(config.replace(precision="bfloat16"), data)
    after = train(config, data)
    np.testing.assert_allclose(after.probabilities, alone.probabilities, atol=1e-5)


# -- the Train page ---------------------------------------------------------------------
def _train_page(tmp_path, monkeypatch):
    from tests.app.conftest import open_page

    monkeypatch.setenv("MNISTLAB_STORE", str(tmp_path / "page-store"))
    app = open_page("pages/train.py")
    assert not app.exception
    return app


def _captions(app) -> list[str]:
    return [c.value.replace("\\", "").replace("\u200b", "") for c in app.caption]


def test_the_train_page_offers_bfloat16_where_the_cpu_has_it(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "bf16_supported", lambda: (True, "this CPU has avx512_bf16"))
    app = _train_page(tmp_path, monkeypatch)
    control = app.radio(key="train_precision")
    assert control.value == "float32" and list(control.options) == ["float32 (the recipes')",
                                                                     "bfloat16 (mixed, faster)"]
    control.set_value("bfloat16").run()
    assert not app.exception
    [launch] = [b for b in app.button if b.key == "train_launch"]
    assert launch.label.endswith("· bf16") and not launch.disabled


def test_the_train_page_hides_bfloat16_with_the_reason_where_the_cpu_lacks_it(unsupported, tmp_path, monkeypatch):
    app = _train_page(tmp_path, monkeypatch)
    assert not [r for r in app.radio if r.key == "train_precision"]
    assert f"Precision: float32. bfloat16 is not offered: {LACKS}." in _captions(app)
