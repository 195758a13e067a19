
from mnistlab.views.share import encode_config
from tests.app.conftest import open_link, open_page, select_runs
from tests.conftest import tiny_config


def errors(app):
    return [e.value for e in app.exception]


def test_compare_view_round_trips_through_the_link(filled_store):
    _, runs = filled_store
    app = open_page("pages/compare.py")
    select_runs(app, [runs["cnn"].run_id, runs["mlp"].run_id])
    app.button_group(key="compare_mode").set_value("side by side").run()
    app.button_group(key="compare_x").set_value("elapsed").run()
    app.slider(key="compare_smoothing").set_value(0.3).run()
    app.toggle(key="compare_log").set_value(True).run()
    app.multiselect(key="compare_archs").set_value(["cnn", "mlp"]).run()
    params = dict(app.query_params)
    assert params["runs"].startswith(runs["cnn"].run_id[:4])  # short names, with configurations while they fit
    assert "~cnn~" in params["runs"]
    other = open_link("pages/compare.py", params)
    assert errors(other) == []
    assert other.session_state["compare_selected"] == [runs["cnn"].run_id, runs["mlp"].run_id]
    assert other.button_group(key="compare_mode").value == "side by side"
    assert other.button_group(key="compare_x").value == "elapsed"
    assert other.slider(key="compare_smoothing").value == 0.3
    assert other.toggle(key="compare_log").value is True
    assert other.multiselect(key="compare_archs").value == ["cnn", "mlp"]


def test_inspect_view_round_trips_through_the_link(filled_store):
    _, runs = filled_store
    app = open_page("pages/inspect.py")
    app.selectbox(key="inspect_run").set_value(runs["mlp"].run_id).run()
    app.selectbox(key="inspect_second").set_value(runs["cnn"].run_id).run()
    app.selectbox(key="inspect_true").set_value(4).run()
    app.toggle(key="inspect_normalized").set_value(True).run()
    assert runs["mlp"].metrics["epochs_run"] > 1 and runs["mlp"].kept_epoch != 1
    app.slider(key="inspect_epoch").set_value(1).run()
    assert dict(app.query_params)["epoch"] == "1"
    other = open_link("pages/inspect.py", dict(app.query_params))
    assert errors(other) == []
    assert other.selectbox(key="inspect_run").value == runs["mlp"].run_id
    assert other.selectbox(key="inspect_second").value == runs["cnn"].run_id
    assert other.selectbox(key="inspect_true").value == 4 and other.toggle(key="inspect_normalized").value
    assert other.slider(key="inspect_epoch").value == 1  # the model at the end of epoch 1, as shared


def test_filters_view_round_trips_through_the_link(filled_store):
    app = open_page("pages/filters.py")
    app.number_input(key="filters_index").set_value(17).run()
    app.selectbox(key="filters_preset").set_value("laplacian").run()
    app.radio(key="filters_padding").set_value("same").run()
    app.toggle(key="filters_relu").set_value(True).run()
    params = dict(app.query_params)
    assert params == {"digit": "17", "preset": "laplacian", "pad": "same", "relu": "1"}
    other = open_link("pages/filters.py", params)
    assert errors(other) == []
    assert other.number_input(key="filters_index").value == 17
    assert other.selectbox(key="filters_preset").value == "laplacian"
    assert other.radio(key="filters_padding").value == "same" and other.toggle(key="filters_relu").value


def test_a_link_kernel_goes_into_the_editor(filled_store):
    app = open_link("pages/filters.py", {"kernel": "0,0,0,0,2,0,0,0,0"})
    assert errors(app) == []
    assert any("kernel (from the link)" in str(chart.proto.spec) for chart in app.get("plotly_chart"))


def test_a_link_with_missing_runs_lists_them_and_offers_training(filled_store):
    _, runs = filled_store
    missing = tiny_config(arch="mlp", epochs=1, seed=321)
    params = {"runs": f"{runs['mlp'].run_id}~{encode_config(runs['mlp'].config)},"
                      f"0123456789abcdef~{encode_config(missing)}"}
    app = open_link("pages/compare.py", params)
    assert errors(app) == []
    assert app.session_state["compare_selected"] == [runs["mlp"].run_id]
    assert any("0123456789abcdef" in m.value and missing.label() in m.value for m in app.markdown)
    assert app.button(key="compare_train_missing").label == "Train the 1 missing run"


def test_hostile_parameters_give_messages_and_touch_nothing_outside_the_store(filled_store, tmp_path):
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    hostile = {
        "compare": {"runs": "../../etc/passwd," + ",".join(f"{i:016x}" for i in range(100)), "mode": "<b>",
                    "smoothing": "NaN", "x": ["epoch", "../.."]},
        "inspect": {"run": "/etc/passwd", "vs": "0123456789abcdef~../../x", "true": "99", "norm": "x" * 10_000},
        "filters": {"digit": "-5", "kernel": "1,2,3,inf", "preset": "../../", "pad": "\x00", "relu": "maybe"},
    }
    for page, params in hostile.items():
        app = open_link(f"pages/{page}.py", params)
        assert errors(app) == [], page
        assert len(app.warning) >= 2, page
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before


def test_read_only_mode_hides_the_writing_actions(filled_store, monkeypatch):
    _, runs = filled_store
    monkeypatch.setenv("MNISTLAB_READ_ONLY", "1")
    train = open_page("pages/train.py")
    assert errors(train) == []
    assert [b for b in train.button if b.key in ("train_launch", "preset_keras", "preset_ch16")] == []
    assert any("read-only" in i.value for i in train.info)
    compare = open_page("pages/compare.py")
    assert not any("Import runs" in e.label for e in compare.expander)
    assert [b for b in compare.button if b.key == "compare_delete"] == []
    missing = open_link("pages/compare.py", {"runs": f"0123456789abcdef~{encode_config(tiny_config())}"})
    assert [b for b in missing.button if b.key == "compare_train_missing"] == []
