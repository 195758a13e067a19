"""The Playground page in AppTest: one probability chart per selected run, links, and no TensorFlow."""

from __future__ import annotations

import numpy as np

from mnistlab.datasets import drawing
from tests.conftest import run_python


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


def test_a_test_digit_gets_one_probability_chart_per_selected_run(filled_store):
    _, runs = filled_store
    ids = [runs["mlp"].run_id, runs["cnn"].run_id, runs["cnn_parity"].run_id]
    app = _open({"source": "test", "digit": "7", "runs": ",".join(ids)})
    assert not app.exception, [e.value for e in app.exception]
    assert app.multiselect(key="playground_runs").value == ids
    probability = [k for k in _chart_keys(app) if "playground_probs_" in k]
    assert len(probability) == 3
    assert any("playground_layer_" in k for k in _chart_keys(app))  # the focused run's layers
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


def test_inspect_scrubs_the_epochs_and_weighs_two_runs(filled_store):
    _, runs = filled_store
    app = _open({"run": runs["cnn"].run_id, "vs": runs["mlp"].run_id}, "pages/inspect.py")
    assert not app.exception, [e.value for e in app.exception]
    slider = app.slider(key="inspect_epoch")
    assert slider.value == runs["cnn"].kept_epoch
    slider.set_value(1).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("McNemar" in m.label for m in app.metric)
    assert any("disagree" in i.value or "same test digits" in i.value for i in app.info)
