"""The frame loads Plotly's JavaScript once per browser session, after the first page: a script that
imports Streamlit's own Plotly chunk by its name in Streamlit's static folder, nothing taken from a user."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from pages import common
from tests.conftest import ROOT


def loader_scripts(app: AppTest) -> list[str]:
    return [h.proto.body for h in app.get("html") if "PlotlyChart." in h.proto.body]


def test_the_first_run_of_a_session_sends_the_plotly_loader_once_and_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_STORE", str(tmp_path / "runs"))
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    (script,) = loader_scripts(app)
    chunk = next(Path(st.__file__).parent.joinpath("static", "static", "js").glob("PlotlyChart.*.js")).name
    assert f'"./{chunk}"' in script and script.startswith("<script>") and script.endswith("</script>")
    assert "setTimeout" in script  # after the page is drawn, not during it
    assert common.PLOTLY_LOADER_STYLE in [h.proto.body for h in app.get("html")]
    app.run()  # the session has it: no second loader
    assert loader_scripts(app) == []


def test_the_loader_is_left_out_when_streamlit_ships_no_single_plotly_chunk(monkeypatch, tmp_path):
    static = tmp_path / "streamlit"
    (static / "static" / "static" / "js").mkdir(parents=True)
    monkeypatch.setattr(st, "__file__", str(static / "__init__.py"))
    common._plotly_loader.cache_clear()
    try:
        assert common._plotly_loader() is None  # none
        js = static / "static" / "static" / "js"
        (js / "PlotlyChart.a1.js").write_text("")
        (js / "PlotlyChart.b2.js").write_text("")
        common._plotly_loader.cache_clear()
        assert common._plotly_loader() is None  # two: which one Streamlit uses is unknown
        (js / "PlotlyChart.b2.js").unlink()
        common._plotly_loader.cache_clear()
        assert re.search(r'"\./PlotlyChart\.a1\.js"', common._plotly_loader())
        (js / "PlotlyChart.a1.js").rename(js / "PlotlyChart.a1'+alert(1)+'.js")
        common._plotly_loader.cache_clear()
        assert common._plotly_loader() is None  # a name that is not a plain chunk name is never written out
    finally:
        common._plotly_loader.cache_clear()
