import time

import pytest

from tests.app.conftest import PAGES, open_page, select_runs
from tests.conftest import run_python


def errors(app):
    return [e.value for e in app.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(empty_store, page):
    app = open_page(page)
    assert errors(app) == []
    if page in ("pages/compare.py", "pages/inspect.py"):
        assert any("Train one first" in info.value for info in app.info)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_store_of_trained_runs(filled_store, page):
    app = open_page(page)
    assert errors(app) == []
    assert not any("Train one first" in info.value for info in app.info)


def test_train_page_shows_a_stored_configuration_as_cached(filled_store):
    _, runs = filled_store
    config = runs["mlp"].config
    app = open_page("pages/train.py")
    app.selectbox(key="train_arch").set_value("mlp")
    app.number_input(key="train_epochs").set_value(config.epochs)
    app.selectbox(key="train_validation").set_value("fraction")
    app.toggle(key="train_limit").set_value(True).run()
    app.number_input(key="train_size").set_value(config.train_size).run()
    assert errors(app) == []
    assert any(s.value.startswith("Cached") for s in app.success)
    assert app.metric[0].value == f"{runs['mlp'].metrics['test_accuracy']:.4f}"


def test_train_page_summarises_the_architecture_before_launch(empty_store):
    app = open_page("pages/train.py")
    app.selectbox(key="train_arch").set_value("deep_cnn").run()
    assert any("329,962 parameters" in m.value for m in app.markdown)


def test_launching_a_tiny_run_from_train_completes_and_it_appears_on_compare(empty_store):
    app = open_page("pages/train.py")
    app.selectbox(key="train_arch").set_value("mlp")
    app.number_input(key="train_epochs").set_value(2)
    app.selectbox(key="train_validation").set_value("fraction")
    app.toggle(key="train_limit").set_value(True).run()
    app.number_input(key="train_size").set_value(200).run()
    app.button(key="train_launch").click().run()
    assert errors(app) == []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not empty_store.list_runs().runs:
        time.sleep(0.5)
    finished = empty_store.list_runs().runs
    assert len(finished) == 1 and finished[0].config.train_size == 200
    app.run()
    assert any(s.value.startswith("Trained just now") for s in app.success)
    compare = open_page("pages/compare.py")
    assert errors(compare) == []
    assert list(compare.dataframe[0].value["run_id"]) == [finished[0].run_id]


def test_selecting_runs_draws_their_curves_in_panels_or_side_by_side(filled_store):
    import json

    _, runs = filled_store
    app = open_page("pages/compare.py")

    def legend():
        spec = json.loads(app.get("plotly_chart")[0].proto.spec)
        return [t["name"] for t in spec["data"] if t.get("showlegend") and t["name"] not in ("training", "validation")]

    select_runs(app, [runs["mlp"].run_id])
    assert legend() == ["mlp"]
    select_runs(app, [runs["mlp"].run_id, runs["cnn"].run_id])
    assert legend() == ["mlp", "cnn"]  # only what differs: the architecture
    app.button_group(key="compare_mode").set_value("side by side").run()
    app.slider(key="compare_smoothing").set_value(0.5).run()
    assert errors(app) == []
    assert app.get("plotly_chart")[0].proto.id != ""

def test_filtering_the_table_by_architecture(filled_store):
    app = open_page("pages/compare.py")
    app.multiselect(key="compare_archs").set_value(["cnn"]).run()
    assert set(app.dataframe[0].value["arch"]) == {"cnn"}


def test_changing_the_kernel_preset_changes_the_output(filled_store):
    app = open_page("pages/filters.py")

    def output_caption():
        return next(c.value for c in app.caption if c.value.startswith("Output values"))

    identity = output_caption()
    app.selectbox(key="filters_preset").set_value("sobel x").run()
    assert errors(app) == []
    assert output_caption() != identity
    app.radio(key="filters_padding").set_value("same").run()
    app.toggle(key="filters_relu").set_value(True).run()
    assert output_caption().startswith("Output values from 0.000")
    assert errors(app) == []


def test_inspect_filters_mistakes_and_compares_two_runs(filled_store):
    _, runs = filled_store
    app = open_page("pages/inspect.py")
    for key in ("inspect_true", "inspect_pred", "inspect_second"):  # shown as a choice, not left blank
        assert app.selectbox(key=key).index == 0 and app.selectbox(key=key).options[0] in ("any", "— none —")
    app.selectbox(key="inspect_run").set_value(runs["mlp"].run_id).run()
    app.selectbox(key="inspect_true").set_value(3).run()
    assert errors(app) == []
    app.selectbox(key="inspect_second").set_value(runs["cnn"].run_id).run()
    assert errors(app) == []
    assert any(m.value.startswith("**Fixed by the second run") for m in app.markdown)


def test_a_broken_run_folder_gives_a_warning_and_the_page_still_works(filled_store, tmp_path, monkeypatch):
    import shutil

    store, runs = filled_store
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy, ignore=shutil.ignore_patterns(".locks", ".progress", ".tmp"))
    (copy / runs["mlp"].run_id / "history.json").write_text("[{")
    monkeypatch.setenv("MNISTLAB_STORE", str(copy))
    for page in ("pages/compare.py", "pages/inspect.py"):
        app = open_page(page)
        assert errors(app) == []
        assert any(runs["mlp"].run_id in w.value for w in app.warning)
        assert len(app.dataframe) >= 1


def test_pages_that_only_read_runs_do_not_import_tensorflow(filled_store):
    store, _ = filled_store
    code = (
        "import sys\n"
        "from tests.app.conftest import open_page\n"
        "for page in ['pages/compare.py', 'pages/inspect.py', 'pages/data.py', 'pages/filters.py']:\n"
        "    app = open_page(page)\n"
        "    assert not app.exception, (page, [e.value for e in app.exception])\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = run_python(code, env={"MNISTLAB_STORE": str(store.root)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_deleting_the_selected_runs_from_compare(filled_store, tmp_path, monkeypatch):
    import shutil

    store, runs = filled_store
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy, ignore=shutil.ignore_patterns(".locks", ".progress", ".tmp"))
    monkeypatch.setenv("MNISTLAB_STORE", str(copy))
    app = open_page("pages/compare.py")
    select_runs(app, [runs["mlp"].run_id])
    app.button(key="compare_delete").click().run()
    assert errors(app) == []
    from mnistlab import RunStore

    assert sorted(r.run_id for r in RunStore(copy).list_runs().runs) == sorted(
        r.run_id for k, r in runs.items() if k != "mlp")
