"""Work shared across sessions: one listing and one chart for every viewer of the same runs."""

from __future__ import annotations

import shutil

import pytest
import streamlit as st

from mnistlab.runs import records
from mnistlab.views import charts
from tests.app.conftest import open_page


@pytest.fixture
def counted(trained_store, tmp_path, monkeypatch):
    """A store with two of the trained runs (the third is held back), fresh shared caches, and
    counters on reading a run's files and drawing the side-by-side chart."""
    source, runs = trained_store
    root = tmp_path / "runs"
    root.mkdir()
    for name in ("mlp", "cnn"):
        shutil.copytree(runs[name].path, root / runs[name].run_id)
    monkeypatch.setenv("MNISTLAB_STORE", str(root))
    st.cache_resource.clear()
    st.cache_data.clear()
    calls = {"read": 0, "chart": 0}
    read, draw = records.read_run_files, charts.metric_panels

    def counting_read(*args, **kwargs):
        calls["read"] += 1
        return read(*args, **kwargs)

    def counting_draw(*args, **kwargs):
        calls["chart"] += 1
        return draw(*args, **kwargs)

    monkeypatch.setattr(records, "read_run_files", counting_read)
    monkeypatch.setattr(charts, "metric_panels", counting_draw)
    yield root, runs, calls
    st.cache_resource.clear()


def test_two_sessions_list_the_store_and_draw_its_chart_once(counted):
    _, _, calls = counted
    first = open_page("pages/compare.py")
    second = open_page("pages/compare.py")
    for app in (first, second):
        assert [e.value for e in app.exception] == []
        assert len(app.dataframe[0].value) == 2
    assert calls == {"read": 2, "chart": 1}  # each run's files once, one chart for both sessions


def test_a_new_run_in_the_store_is_seen_by_the_next_rerun(counted):
    root, runs, calls = counted
    app = open_page("pages/compare.py")
    assert len(app.dataframe[0].value) == 2
    added = runs["cnn_parity"]
    shutil.copytree(added.path, root / added.run_id)
    app.run()
    assert [e.value for e in app.exception] == []
    assert added.run_id in set(app.dataframe[0].value["run_id"])
    assert calls["read"] == 3  # only the new run's files were read
