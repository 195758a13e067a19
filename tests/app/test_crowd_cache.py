"""What a crowd of viewers shares (issue 16): figures whose JSON data are made once, one listing
of the store per state, no secrets lookup on every read."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import plotly.graph_objects as go
import plotly.io
import pytest
import streamlit as st

from mnistlab import RunStore
from mnistlab.views import charts
from pages import common
from tests.app.conftest import open_page
from tests.synthetic import synthetic_configs, write_runs


@pytest.fixture
def fresh_caches():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def plain_json(figure) -> str:
    return plotly.io.to_json(go.Figure.to_dict(figure), validate=False)


def test_a_shared_figure_sends_the_same_json_made_once(tmp_path, fresh_caches):
    store = RunStore(tmp_path / "runs")
    write_runs(store, synthetic_configs(3), diverged=(2,))
    runs = store.list_runs().runs
    colors = {r.run_id: charts.slot_color(i) for i, r in enumerate(runs)}
    built = []

    def panels():
        built.append(charts.metric_panels(charts.run_lines(runs, colors, {r.run_id: r.run_id[:6] for r in runs}),
                                          x="epoch", smoothing=0.0, log_y=False, full_range=False, band="std"))
        return built[-1]

    figure, ranges = common.shared("test_panels", runs, panels, x="epoch")
    again, _ = common.shared("test_panels", runs, panels, x="epoch")
    assert again is figure and len(built) == 1 and isinstance(ranges, dict)
    expected = plain_json(figure)  # what a plain figure sends: from its own data, deep-copied
    assert plotly.io.to_json(figure.to_dict(), validate=False) == expected  # what st.plotly_chart sends
    assert json.loads(expected) == figure.to_dict()
    assert figure.to_dict() is not figure.to_dict()  # callers get their own outer dict
    copied, pickled = copy.deepcopy(figure), pickle.loads(pickle.dumps(figure))
    assert plotly.io.to_json(figure.to_dict(), validate=False) == expected  # their keys were not added to it
    for other in (copied, pickled):
        assert json.loads(plain_json(other)) == json.loads(expected)


def test_a_change_to_a_shared_figure_is_not_lost(fresh_caches):
    figure = common.shared("test_figure", [], lambda: go.Figure(go.Scatter(x=np.arange(3), y=[1.0, np.nan, 3.0])))
    assert figure.to_dict()["data"][0]["y"] == [1.0, None, 3.0]
    figure.update_layout(title="changed")
    assert figure.to_dict()["layout"]["title"]["text"] == "changed"
    figure.data[0].name = "renamed"
    assert figure.to_dict()["data"][0]["name"] == "renamed"
    figure.add_trace(go.Bar(x=[1], y=[2]))
    assert [t["type"] for t in figure.to_dict()["data"]] == ["scatter", "bar"]
    assert figure.to_dict() == json.loads(plain_json(figure))


def test_other_results_are_shared_as_they_are(fresh_caches):
    frame = {"a": [1, 2]}
    assert common.shared("test_value", [], lambda: frame) is frame
    assert common.shared("test_options", [], lambda: 1, n=1) != common.shared("test_options", [], lambda: 2, n=2)


def test_the_listing_is_shared_until_the_store_moves(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    write_runs(store, synthetic_configs(2))
    calls = []
    listed = RunStore.list_runs
    monkeypatch.setattr(RunStore, "list_runs", lambda self: calls.append(1) or listed(self))
    first = common.listing(store)
    assert common.listing(store) is first and len(calls) == 1
    write_runs(store, synthetic_configs(3)[2:])  # a run stored: the state token moves
    assert len(common.listing(store).runs) == 3 and len(calls) == 2
    monkeypatch.setattr(common, "LISTING_MAX_AGE", 0.0)  # too old: listed again (a file edited in place)
    common.listing(store)
    assert len(calls) == 3


def test_no_secrets_file_is_not_looked_for_on_every_read(monkeypatch):
    from streamlit import config
    from streamlit.runtime.secrets import secrets_singleton

    if any(__import__("os").path.exists(p) for p in config.get_option("secrets.files")):
        pytest.skip("this machine has a Streamlit secrets file")

    def parse(*args, **kwargs):
        raise AssertionError("looked for the secrets files")

    monkeypatch.setattr(type(secrets_singleton), "_parse", parse)
    assert common._secrets() == {}


def test_secrets_still_set_the_hosting_settings(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    write_runs(store, synthetic_configs(2))
    monkeypatch.setenv("MNISTLAB_STORE", str(store.root))
    monkeypatch.delenv("MNISTLAB_READ_ONLY", raising=False)
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.secrets["MNISTLAB_READ_ONLY"] = "1"
    app.run()
    app.switch_page("pages/compare.py").run()
    assert not app.exception
    importing = "Import runs from a bundle (.zip)"
    assert importing not in [e.label for e in app.expander]  # read-only: no import
    writable = open_page("pages/compare.py")
    assert importing in [e.label for e in writable.expander]


def test_digit_images_are_the_digits_made_once_and_bounded(monkeypatch):
    import base64
    import io

    from PIL import Image

    data = common.dataset()
    first = common.digit_images(data, [3, 7])
    again = common.digit_images(data, np.array([3, 7]))
    assert [a is b for a, b in zip(first, again)] == [True, True]  # made once, then only sent
    for index, url in zip([3, 7], first):
        assert url.startswith("data:image/png;base64,")
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
        assert np.array_equal(pixels, 255 - data.x_test[index])  # dark on light, as the galleries showed them
    monkeypatch.setattr(common, "MAX_DIGIT_IMAGES", 5)
    common.digit_images(data, range(20))
    assert len(common._digit_images) <= 5
