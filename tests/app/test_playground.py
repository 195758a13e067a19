"""The Playground page in AppTest: one probability chart per selected run, links, and no TensorFlow;
the agreement flag and the feature maps' scale as plain functions; Inspect's epoch slider and two runs."""

from __future__ import annotations

import base64
import io
import json

import numpy as np

from mnistlab.datasets import drawing
from mnistlab.views.playground import agreement, feature_maps
from tests.conftest import run_python

NAMES = {"a": "mlp · aaaaaa", "b": "cnn · bbbbbb", "c": "deep_cnn · cccccc", "d": "cnn · dddddd"}


def _open(params: dict, page: str = "pages/playground.py"):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.run()
    for key, value in params.items():
        app.query_params[key] = value
    app.switch_page(page).run()
    return app


def _chart_keys(app) -> list[str]:
    return [c.proto.id for c in app.get("plotly_chart")]


def test_the_flag_names_the_majority_and_who_is_outvoted_in_plain_words():
    one = agreement({"a": ("digits", "7")}, NAMES)
    assert one.kind == "single" and not one.flagged
    both = agreement({"a": ("digits", "7"), "b": ("digits", "7")}, NAMES)
    assert (both.kind, both.message, both.flagged) == ("agree", "Both runs say 7.", frozenset())
    three = agreement({k: ("digits", "7") for k in "abc"}, NAMES)
    assert three.message == "All 3 runs say 7."
    split = agreement({"a": ("digits", "0"), "b": ("digits", "2"), "c": ("digits", "0")}, NAMES)
    assert split.kind == "disagree" and split.flagged == {"b"}
    assert "2 of 3 runs say 0" in split.message and "outvoted (shaded): cnn · bbbbbb says 2" in split.message
    for result in (one, both, three, split):
        assert "(s)" not in result.message


def test_a_tie_has_no_majority_so_every_run_of_it_is_flagged():
    tie = agreement({"a": ("digits", "0"), "b": ("digits", "2")}, NAMES)
    assert tie.kind == "disagree" and tie.flagged == {"a", "b"}
    assert "no majority" in tie.message.lower() and "both" in tie.message
    three_ways = agreement({"a": ("digits", "0"), "b": ("digits", "2"), "c": ("digits", "3")}, NAMES)
    assert three_ways.flagged == {"a", "b", "c"} and "all 3" in three_ways.message


def test_runs_of_different_tasks_are_not_a_disagreement():
    mixed = agreement({"a": ("digits", "7"), "b": ("digits", "7"), "d": ("parity", "odd")}, NAMES)
    assert mixed.kind == "agree" and not mixed.flagged
    assert "digits: both runs say 7" in mixed.message and "parity: 1 run says odd" in mixed.message
    outvoted = agreement({"a": ("digits", "7"), "b": ("digits", "1"), "c": ("digits", "7"), "d": ("parity", "odd")},
                         NAMES)
    assert outvoted.flagged == {"b"}


def pixels(url: str) -> np.ndarray:
    from PIL import Image

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def test_feature_maps_show_a_silent_filter_black_and_a_busy_one_on_its_own_scale():
    values = np.zeros((6, 6, 3))
    values[2, 2, 1] = 4.0  # a filter that fires on one pixel
    values[:, :, 2] = 0.001  # one that barely fires anywhere: not blown up to white
    silent, busy, faint = (pixels(url) for url in feature_maps(values, zoom=2))
    assert silent.shape == busy.shape == faint.shape == (12, 12)  # each value a 2 x 2 block
    assert silent.max() == 0  # all zeros: black, not the mid-grey of a constant map scaled to itself
    assert busy[4:6, 4:6].min() == 255 and busy.sum() == 4 * 255  # its peak white, the rest black
    assert faint.max() <= 2  # drawn dim against the layer's strongest map (0.001 of 4.0 x 0.05)


def test_the_focused_runs_feature_maps_are_pictures_not_a_grid_of_heatmaps(filled_store):
    _, runs = filled_store
    app = _open({"source": "test", "digit": "7", "runs": runs["cnn"].run_id})
    assert not app.exception, [e.value for e in app.exception]
    grids = [i for i in app.get("image") if len(i.proto.imgs) >= 8]
    assert grids and all(img.url.startswith("data:image/png;base64,") for g in grids for img in g.proto.imgs)
    assert [img.caption for img in grids[0].proto.imgs][:3] == ["#0", "#1", "#2"]
    heatmaps = [sum(t.get("type") == "heatmap" for t in json.loads(c.proto.spec)["data"]) for c in app.get("plotly_chart")]
    assert heatmaps and max(heatmaps) <= 1  # single images only (input, kernel, occlusion): no grid of maps


def test_a_test_digit_gets_one_probability_chart_per_selected_run(filled_store):
    _, runs = filled_store
    ids = [runs["mlp"].run_id, runs["cnn"].run_id, runs["cnn_parity"].run_id]
    app = _open({"source": "test", "digit": "7", "runs": ",".join(ids)})
    assert not app.exception, [e.value for e in app.exception]
    assert app.multiselect(key="playground_runs").value == ids
    probability = [k for k in _chart_keys(app) if "playground_probs_" in k]
    assert len(probability) == 3
    assert any("playground_layer_" in k for k in _chart_keys(app))  # the focused run's layers
    assert app.selectbox(key="playground_focus").value == runs["cnn"].run_id  # the deepest model, not the first
    flags = [e.value for e in (*app.success, *app.warning, *app.info)]
    assert any("runs say" in f or "disagree" in f for f in flags) and not any("(s)" in f for f in flags), flags
    assert "digit=7" in "&".join(f"{k}={v}" for k, v in app.query_params.items()) or app.query_params["digit"] == "7"


def test_a_drawn_digit_in_the_link_is_shown_and_hostile_links_do_not_crash(filled_store):
    _, runs = filled_store
    digit = drawing.preprocess(np.eye(56)[::-1] * 1.0)
    app = _open({"drawn": drawing.encode(digit), "runs": runs["cnn"].run_id})
    assert not app.exception, [e.value for e in app.exception]
    assert len([k for k in _chart_keys(app) if "playground_probs_" in k]) == 1
    hostile = _open({"drawn": "z![x](http://evil.example/x.png)", "digit": "-1", "source": "<b>x</b>",
                     "runs": "0123456789abcdef~cnn~e:3,zzz", "focus": "`rm -rf`"})
    assert not hostile.exception, [e.value for e in hostile.exception]
    shown = " ".join(w.value for w in hostile.warning)
    assert "Ignored the link" in shown and "](http" not in shown and "<b>" not in shown


def test_the_playground_imports_no_tensorflow(filled_store):
    store, runs = filled_store
    result = run_python(
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "app = AppTest.from_file('streamlit_app.py', default_timeout=60)\n"
        "app.run()\n"
        f"app.query_params.update(source='test', digit='3', runs='{runs['cnn'].run_id},{runs['mlp'].run_id}')\n"
        "app.switch_page('pages/playground.py').run()\n"
        "assert not app.exception, [e.value for e in app.exception]\n"
        "print('CHARTS', len([c for c in app.get('plotly_chart') if 'playground_probs_' in c.proto.id]))\n"
        "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n",
        env={"MNISTLAB_STORE": str(store.root)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CHARTS 2" in result.stdout and "TF False False" in result.stdout, result.stdout


def _matrix_heading(app) -> str:
    return next(m.value for m in app.markdown if m.value.startswith("**Confusion matrix**"))


def test_inspect_scrubs_the_epochs_and_weighs_two_runs(filled_store):
    _, runs = filled_store
    cnn = runs["cnn"]
    app = _open({"run": cnn.run_id, "vs": runs["mlp"].run_id}, "pages/inspect.py")
    assert not app.exception, [e.value for e in app.exception]
    slider = app.slider(key="inspect_epoch")
    assert slider.value == cnn.kept_epoch
    assert slider.label == f"Epoch (the run keeps epoch {cnn.kept_epoch})"
    assert f"the kept model, epoch {cnn.kept_epoch} of {cnn.metrics['epochs_run']}" in _matrix_heading(app)
    slider.set_value(1).run()
    assert not app.exception, [e.value for e in app.exception]
    assert f"— epoch 1 of {cnn.metrics['epochs_run']}" in _matrix_heading(app)  # the matrix says which epoch
    assert any("McNemar" in m.label for m in app.metric)
    assert any("only one of them gets right" in i.value or "same test digits" in i.value for i in app.info)
    # The two runs are A and B everywhere: the pickers, the counts, the difference and the sentence.
    assert [m.label for m in app.metric] == ["Only A right", "Only B right", "McNemar exact p", "Accuracy B − A"]
    p_shown = next(m.value for m in app.metric if m.label == "McNemar exact p")
    assert p_shown == "< 0.001" or 0.001 <= float(p_shown) <= 1.0  # never 1.96e-06 for a student to decode
    assert any("run A" in i.value and "run B" in i.value for i in app.info)  # the sentence uses the same names
    assert any(m.value.startswith("**B minus A**") for m in app.markdown)


def test_inspect_names_a_garbage_epoch_in_the_link_and_shows_the_kept_model(filled_store):
    _, runs = filled_store
    app = _open({"run": runs["cnn"].run_id, "epoch": "?"}, "pages/inspect.py")
    assert not app.exception, [e.value for e in app.exception]
    assert any("Ignored the link's 'epoch'" in w.value for w in app.warning)
    assert app.slider(key="inspect_epoch").value == runs["cnn"].kept_epoch
