"""The Sweep page through AppTest: what a grid expands to, the launch, the read-only refusal, recipes."""

import pytest

from mnistlab.errors import ReadOnlyError
from mnistlab.runs import worker
from tests.app.conftest import open_page

PAGE = "pages/sweep.py"


def fill_tiny_grid(app, seeds=2):
    app.multiselect(key="sweep_arch").set_value(["mlp", "cnn"])
    app.text_input(key="sweep_epochs").set_value("1")
    app.text_input(key="sweep_train_size").set_value("300")
    app.multiselect(key="sweep_validation").set_value(["fraction"])
    app.number_input(key="sweep_seeds").set_value(seeds)
    app.text_input(key="sweep_name").set_value("page-sweep")
    return app.run()


def metrics(app) -> dict:
    return {m.label: m.value for m in app.metric}


@pytest.fixture
def no_worker(monkeypatch):
    """Launches queue runs but start no background process (the test only checks the queue)."""
    started = []
    monkeypatch.setattr(worker, "start_worker", lambda store, **options: started.append(store.root))
    return started


def test_the_page_counts_the_runs_a_grid_expands_to_and_launches_them(empty_store, no_worker):
    app = fill_tiny_grid(open_page(PAGE))
    assert not app.exception
    assert metrics(app)["Runs"] == "4" and metrics(app)["Stored"] == "0" and metrics(app)["To train"] == "4"
    app.button(key="sweep_launch").click().run()
    assert not app.exception
    queued = empty_store.live.active()
    assert len(queued) == 4 and {a.sweep for a in queued} == {"page-sweep"} and no_worker
    assert empty_store.live.sweep_run_ids("page-sweep") == [a.run_id for a in queued]
    assert any("0 of 4 done" in m.value and "4 queued" in m.value for m in app.markdown)


def test_a_bad_value_shows_the_tables_message(empty_store):
    app = open_page(PAGE)
    app.text_input(key="sweep_batch_size").set_value("32, 0").run()
    errors = [e.value.replace("\\", "") for e in app.error]  # shown escaped: it quotes what was typed
    assert any("batch_size must be an integer in [1, 60000], got 0" in e for e in errors), errors
    assert "sweep_launch" not in [b.key for b in app.button]


def test_a_read_only_instance_hides_the_launch_and_the_library_refuses_it(empty_store, monkeypatch):
    monkeypatch.setenv("MNISTLAB_READ_ONLY", "1")
    app = fill_tiny_grid(open_page(PAGE))
    assert not app.exception
    assert metrics(app)["Runs"] == "4"
    assert "sweep_launch" not in [b.key for b in app.button]
    assert any("read-only" in i.value for i in app.info)
    from mnistlab import RunStore, sweeps, sweeps_exec

    store = RunStore(empty_store.root)
    assert store.settings.read_only
    plan = sweeps_exec.plan_sweep(store, sweeps.make_sweep({"arch": "mlp", "epochs": 1}, data="sample"))
    with pytest.raises(ReadOnlyError):
        sweeps_exec.launch_sweep(store, plan)
    assert not empty_store.root.exists()


def test_the_recipes_table_lists_the_eight_recipes_and_says_the_sample_is_not_full_mnist(empty_store):
    app = open_page(PAGE)
    table = app.dataframe[0].value
    assert list(table["recipe"]) == ["digits/mlp", "digits/cnn", "digits/deep_cnn", "parity/mlp", "parity/cnn",
                                     "parity/deep_cnn", "ch16/mlp_512", "ch16/cnn_dropout"]
    assert table["published"].tolist()[:3] == [97.68, 98.76, 99.18]
    assert any("published numbers are for full MNIST" in i.value for i in app.info)
