"""Live everywhere: every page follows the store while it is open (pages/watch.py).

The store's state token (RunStore.state_token) moves when a run folder comes or goes and when
an attempt is launched or ends, and stays put on an idle store; a tick of the watch fragment
reruns the app only when it moved; a rerun of any page shows a run stored by another process,
and the sidebar's count of runs in progress. AppTest fires no ``run_every`` timer, so the tick
is called directly (tests/e2e/test_live_browser.py has the timer in a real browser).
"""

from __future__ import annotations

import gc
import os
import shutil
import threading
import uuid

import pytest
from streamlit.testing.v1 import AppTest

from mnistlab import RunStore
from mnistlab.runs import worker as jobs
from pages import watch
from tests.app.conftest import open_page
from tests.conftest import tiny_config


def errors(app):
    return [e.value for e in app.exception]


def store_of(root, trained_store, names) -> RunStore:
    """A store of its own (attempts launched here touch no other test) with copies of trained runs."""
    _, runs = trained_store
    root.mkdir(parents=True)
    for name in names:
        shutil.copytree(runs[name].path, root / runs[name].run_id)
    return RunStore(root)


def add_run(store: RunStore, run) -> None:
    """Store a whole run the way the store does: written aside, then renamed into the root."""
    aside = store.root / ".tmp" / f"incoming-{uuid.uuid4().hex[:8]}"
    aside.parent.mkdir(exist_ok=True)
    shutil.copytree(run.path, aside)
    os.rename(aside, store.root / run.run_id)


def in_another_thread(work) -> None:
    """What a script run does: use the store from a thread that then ends (closing its connection)."""
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    gc.collect()


def shows_runs(app, n: int) -> bool:
    return any(f"{n} runs in the store" in c.value or f"of {n} runs" in c.value for c in app.caption)


def in_progress(app) -> str:
    return " ".join(c.value for c in app.sidebar.caption if "in progress" in c.value)


@pytest.fixture(autouse=True)
def frame_on_every_run(monkeypatch):
    """Run streamlit_app.py's frame (watch, sidebar) on every AppTest run, as the real server does.

    AppTest resets Streamlit's legacy-multipage flag before each run and, seeing a pages/ folder,
    runs every later run's page file alone (pages/common.py leaves that mode only once per
    process, at its import): the frame, and so the sidebar and the watch, would run only on the
    first run. Leave the mode after each detection, as pages/common.py does on a real server.
    """
    from streamlit.runtime.pages_manager import PagesManager

    detect = PagesManager.__init__

    def init(self, *args, **kwargs):
        detect(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture
def live_store(tmp_path, trained_store, monkeypatch):
    """Two of the trained runs in a store of this test's own, set for the app; the third run to add."""
    _, runs = trained_store
    store = store_of(tmp_path / "runs", trained_store, ["mlp", "cnn"])
    monkeypatch.setenv("MNISTLAB_STORE", str(store.root))
    return store, runs["cnn_parity"]


def test_the_token_moves_with_run_folders_and_attempts_and_not_on_an_idle_store(live_store):
    store, third = live_store
    idle = store.state_token()
    in_another_thread(lambda: (store.list_runs(), store.live.active()))  # creates live.sqlite3 and its side files
    in_another_thread(lambda: store.live.counts())  # the side files come and go with connections
    assert store.state_token() == idle
    assert RunStore(store.root).state_token() == idle  # another process's view of the same store

    add_run(store, third)
    added = store.state_token()
    assert added != idle
    assert store.state_token() == added

    [run_id] = jobs.enqueue(store, [tiny_config(epochs=4)])  # launched, no worker: it stays queued
    queued = store.state_token()
    assert queued != added
    attempt = store.live.claim("test-worker", None, run_id=run_id)
    store.live.record_epoch(attempt.id, [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1,
                                         "val_accuracy": 0.4, "seconds": 0.1}])
    assert store.state_token() == queued  # a start or an epoch reruns nothing: Train draws those itself
    store.live.finish(attempt.id, "failed", "test")
    ended = store.state_token()
    assert ended != queued

    store.delete(third.run_id)
    deleted = store.state_token()
    assert deleted not in (ended, added)
    assert store.state_token() == deleted


def test_the_token_never_raises(tmp_path):
    assert RunStore(tmp_path / "missing").state_token() == RunStore(tmp_path / "other").state_token()
    (tmp_path / "a-file").write_text("not a folder")
    assert RunStore(tmp_path / "a-file").state_token() == ("no store",)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "live.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    assert RunStore(broken).state_token()[1] is None  # the live state cannot be read: no activity, no error
    empty = tmp_path / "empty-db"
    empty.mkdir()
    (empty / "live.sqlite3").write_bytes(b"")  # a file whose schema is not written yet
    assert RunStore(empty).state_token()[1] == (0, 0)


def _tick_script(root: str) -> None:
    """A full run records the token once; every later run is a tick (what run_every would call)."""
    import streamlit as st

    from mnistlab import RunStore
    from pages import watch

    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    store = RunStore(root)
    if "recorded" not in st.session_state:
        st.session_state["recorded"] = True
        st.session_state[watch.KEY] = store.state_token()
    watch.tick(store)


def test_a_tick_reruns_the_app_only_when_the_store_changed(live_store):
    store, third = live_store
    app = AppTest.from_function(_tick_script, args=(str(store.root),), default_timeout=30).run()
    assert app.session_state["runs"] == 1
    app.run()
    assert app.session_state["runs"] == 2  # nothing changed: no rerun
    add_run(store, third)
    app.run()
    assert app.session_state["runs"] == 4  # the tick saw the new run and reran the app
    assert app.session_state[watch.KEY] == store.state_token()
    app.run()
    assert app.session_state["runs"] == 5
    jobs.enqueue(store, [tiny_config(epochs=4)])
    app.run()
    assert app.session_state["runs"] == 7  # an attempt launched elsewhere: the sidebar's count must move
    assert errors(app) == []


def test_compare_shows_a_run_stored_by_another_process_on_its_next_run(live_store):
    store, third = live_store
    app = open_page("pages/compare.py")
    assert errors(app) == []
    assert shows_runs(app, 2)
    assert app.session_state[watch.KEY] == store.state_token()  # the full run recorded the state it drew

    add_run(store, third)
    app.run()  # what the tick asks for once the token moved
    assert errors(app) == []
    assert shows_runs(app, 3)
    assert app.session_state[watch.KEY] == store.state_token()


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/inspect.py", "pages/data.py"])
def test_the_sidebar_counts_runs_in_progress_on_every_page(live_store, page):
    store, _ = live_store
    app = open_page(page)
    assert errors(app) == []
    assert in_progress(app) == ""
    [run_id] = jobs.enqueue(store, [tiny_config(epochs=4)])  # as another tab or process launches one
    app.run()
    assert "1 run in progress" in in_progress(app)
    store.live.request_cancel(store.live.latest(run_id).id)  # queued: cancelled at once
    app.run()
    assert in_progress(app) == ""
    assert errors(app) == []
