"""Compare with many runs (written, not trained): the table is the picker, seed groups, the
robust y range, links for 300 runs."""

from __future__ import annotations

import pytest

from mnistlab import RunStore
from mnistlab.views import charts, share
from tests.app.conftest import open_link, open_page
from tests.synthetic import synthetic_configs, write_runs


def errors(app) -> list[str]:
    return [e.value for e in app.exception]


def store_with(tmp_path, monkeypatch, configs, **options) -> tuple[RunStore, list[str]]:
    store = RunStore(tmp_path / "runs")
    ids = write_runs(store, configs, **options)
    monkeypatch.setenv("MNISTLAB_STORE", str(store.root))
    return store, ids


def table_ids(app) -> list[str]:
    return list(app.dataframe(key="compare_table").value["run_id"])


def tick(app, rows: list[int]):
    app.session_state["compare_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return app.run()


def captions(app) -> str:
    return "\n".join(c.value for c in app.caption)


def test_ticking_table_rows_selects_runs_in_order_with_stable_colours(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(8))
    app = open_page("pages/compare.py")
    assert errors(app) == []
    ids = table_ids(app)
    assert app.session_state["compare_selected"] == ids[:3]  # first visit: the three newest
    tick(app, [0, 2, 5])  # untick row 1, tick row 5
    assert errors(app) == []
    assert app.session_state["compare_selected"] == [ids[0], ids[2], ids[5]]
    swatches = app.dataframe(key="compare_table").value.set_index("run_id")["colour"]
    # a run keeps its colour while it stays selected; the new one takes the free colour
    assert "%23" + charts.PALETTE[0].lstrip("#") in swatches[ids[0]]
    assert "%23" + charts.PALETTE[2].lstrip("#") in swatches[ids[2]]
    assert "%23" + charts.PALETTE[1].lstrip("#") in swatches[ids[5]]
    assert not isinstance(swatches[ids[1]], str)  # unselected: no colour
    figure = app.get("plotly_chart")[0].proto.spec
    for rid, slot in ((ids[0], 0), (ids[2], 2), (ids[5], 1)):
        assert f'"color":"{charts.PALETTE[slot]}"' in figure.replace(" ", "")


def test_a_filter_keeps_the_selection_of_rows_it_hides(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(9))
    app = open_page("pages/compare.py")
    selected = app.session_state["compare_selected"]
    arch = app.dataframe(key="compare_table").value.set_index("run_id").loc[selected[0], "arch"]
    app.multiselect(key="compare_archs").set_value([arch]).run()
    assert errors(app) == []
    shown = table_ids(app)
    assert all(rid in shown or rid in selected for rid in shown)
    assert app.session_state["compare_selected"] == selected  # hidden rows stay selected
    assert app.session_state["compare_table"]["selection"]["rows"] == [shown.index(r) for r in selected if r in shown]


def test_select_top_n_ranks_by_validation_not_test_accuracy(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(10))
    app = open_page("pages/compare.py")
    app.number_input(key="compare_top_n").set_value(4).run()
    app.button(key="compare_select_top").click().run()
    assert errors(app) == []
    table = app.dataframe(key="compare_table").value
    best = list(table.sort_values("val_accuracy", ascending=False)["run_id"][:4])
    assert app.session_state["compare_selected"] == best


def test_group_seeds_shows_mean_and_std_per_configuration(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(15, seeds=5))
    app = open_page("pages/compare.py")
    app.button(key="compare_select_all").click().run()
    app.toggle(key="compare_groups").set_value(True).run()
    assert errors(app) == []
    groups = next(d.value for d in app.dataframe if "n" in d.value.columns)  # the seed-group table
    assert list(groups["n"]) == [5, 5, 5]
    assert all("±" in text for text in groups["test"])
    assert all(name.endswith("(n=5)") for name in groups["name"])
    legend = [t["name"] for t in _traces(app) if t.get("showlegend") and t.get("name") not in ("training", "validation")]
    assert sorted(legend) == sorted(groups["name"])


def test_one_diverged_run_is_left_out_of_the_y_range_and_named(tmp_path, monkeypatch):
    _, ids = store_with(tmp_path, monkeypatch, synthetic_configs(12), diverged=(4,))
    app = open_page("pages/compare.py")
    app.button(key="compare_select_all").click().run()
    assert errors(app) == []
    assert "1 run above the range" in captions(app)
    app.toggle(key="compare_full").set_value(True).run()
    assert "above the range" not in captions(app)


def test_a_link_with_300_runs_fits_and_restores_the_selection(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(300, seeds=5))
    app = open_page("pages/compare.py", timeout=120)
    app.button(key="compare_select_all").click().run()
    assert errors(app) == []
    selected = app.session_state["compare_selected"]
    assert len(selected) == 300
    params = app.query_params.to_dict() if hasattr(app.query_params, "to_dict") else dict(app.query_params)
    params = {k: v[-1] if isinstance(v, list) else v for k, v in params.items()}
    assert share.query_length(params) < share.LINK_BUDGET
    other = open_link("pages/compare.py", params)
    assert errors(other) == []
    assert other.session_state["compare_selected"] == selected


def _traces(app) -> list[dict]:
    import json

    return json.loads(app.get("plotly_chart")[0].proto.spec)["data"]


@pytest.mark.parametrize("count", [3, 40])
def test_panels_are_tall_and_legends_name_only_what_differs(tmp_path, monkeypatch, count):
    store_with(tmp_path, monkeypatch, synthetic_configs(count))
    app = open_page("pages/compare.py")
    app.button(key="compare_select_all").click().run()
    assert errors(app) == []
    import json

    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["height"] >= 2 * 380
    legend = [t["name"] for t in spec["data"] if t.get("showlegend") and t.get("name") not in ("training", "validation")]
    assert len(legend) == count
    assert all("digits" not in name for name in legend)  # the task is shared: named in the caption instead
    assert "digits" in captions(app)


def test_what_mattered_is_estimated_in_the_background_and_then_shown(tmp_path, monkeypatch):
    import time

    store_with(tmp_path, monkeypatch, synthetic_configs(24))
    app = open_page("pages/compare.py")
    assert errors(app) == []
    assert "What varies across the shown runs" in [h.value for h in app.subheader]
    deadline = time.monotonic() + 60
    while "Permutation importance" not in captions(app) and time.monotonic() < deadline:
        time.sleep(0.5)
        app.run()
    assert errors(app) == []
    assert "Permutation importance" in captions(app)
    assert "Estimating what mattered" not in captions(app)


def test_over_300_selected_runs_the_page_points_to_the_report_or_a_bundle(tmp_path, monkeypatch):
    store_with(tmp_path, monkeypatch, synthetic_configs(301))
    app = open_page("pages/compare.py", timeout=120)
    app.button(key="compare_select_all").click().run()
    assert errors(app) == []
    assert len(app.session_state["compare_selected"]) == 301
    assert any("A link names up to 300 runs; 301 are selected" in w.value for w in app.warning)
    assert "runs" not in dict(app.query_params)  # the link keeps the view's settings only
