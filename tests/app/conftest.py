"""AppTest helpers: the real app, pointed at a store by $MNISTLAB_STORE."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

PAGES = ["pages/train.py", "pages/compare.py", "pages/inspect.py", "pages/filters.py", "pages/data.py"]


def open_link(page: str, params: dict) -> AppTest:
    """What a recipient sees: the app opened on a page with a link's parameters."""
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.query_params.update(params)
    app.run()
    app.switch_page(page).run()
    return app


def open_page(page: str, timeout: float = 60) -> AppTest:
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=timeout)
    app.run()
    if page != "pages/train.py":
        app.switch_page(page).run()
    return app


def select_runs(app: AppTest, run_ids: list[str]) -> AppTest:
    """Compare's selection set to these runs, in this order (as ticking their rows one by one does)."""
    app.session_state["compare_selected"] = list(run_ids)
    return app.run()


@pytest.fixture
def filled_store(trained_store, monkeypatch):
    store, runs = trained_store
    monkeypatch.setenv("MNISTLAB_STORE", str(store.root))
    return store, runs


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    from mnistlab import RunStore

    monkeypatch.setenv("MNISTLAB_STORE", str(tmp_path / "empty"))
    return RunStore(tmp_path / "empty")
