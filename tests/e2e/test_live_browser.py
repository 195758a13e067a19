"""Live everywhere, in a real Chromium against the real server: a page that is open follows the
store (pages/watch.py). Another process stores a run, or launches one: within 5 seconds the
Compare page shows it, and the sidebar counts it, without anyone touching the page.

The server has a store of its own (runs are added and attempts launched here).
"""

from __future__ import annotations

import re
import shutil
import time

import pytest

from mnistlab import RunStore
from tests.conftest import run_python
from tests.e2e.conftest import Page, running_server

pytestmark = pytest.mark.browser

#: A change made elsewhere must show on an open page within this many seconds.
WITHIN = 5.0


@pytest.fixture(scope="module")
def live_server(trained_store, browser, tmp_path_factory):
    """A server on a store of two trained runs; the third run of ``trained_store`` is kept aside to add."""
    _, runs = trained_store
    root = tmp_path_factory.mktemp("live") / "runs"
    root.mkdir()
    for name in ("mlp", "cnn"):
        shutil.copytree(runs[name].path, root / runs[name].run_id)
    with running_server(root) as base:
        yield base, RunStore(root), runs["cnn_parity"]


@pytest.fixture
def app(browser, live_server):
    base, _, _ = live_server
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = Page(context.new_page(), base)
    yield page
    context.close()


def elsewhere(code: str, store: RunStore) -> float:
    """Run ``code`` in another Python process on the store; returns when it made its change (its last
    line prints ``time.time()``)."""
    result = run_python(code, env={"MNISTLAB_STORE": str(store.root)}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.strip().splitlines()[-1])


def within(predicate, since: float, seconds: float = WITHIN) -> float | None:
    """Seconds from ``since`` until ``predicate()`` held, or None if it did not within ``seconds``."""
    while time.time() < since + seconds:
        if predicate():
            return time.time() - since
        time.sleep(0.1)
    return time.time() - since if predicate() else None


def counts_runs(app, n: int):
    """The Compare page's count of stored runs (its table is a canvas): "3 runs in the store" or "3 of 3 runs"."""
    text = app.page.get_by_text(re.compile(rf"(?<!\d){n} runs in the store|of {n} runs\b"))
    return lambda: text.count() > 0


def in_progress(app, n: int):
    text = app.page.locator('[data-testid="stSidebar"]').get_by_text(f"{n} run{'' if n == 1 else 's'} in progress")
    return lambda: text.count() > 0


def test_an_open_compare_page_shows_a_run_stored_by_another_process_within_seconds(app, live_server):
    _, store, third = live_server
    app.open("compare")
    assert within(counts_runs(app, 2), time.time(), 30) is not None
    app.settle()
    time.sleep(2.5)  # at least one tick of the watch on an idle store: nothing changes
    assert counts_runs(app, 2)()

    aside = store.root / ".tmp" / "incoming-live-test"
    stored = elsewhere(  # what the store does: the whole run written aside, then renamed into place
        f"import os, shutil, time\n"
        f"os.makedirs({str(aside.parent)!r}, exist_ok=True)\n"
        f"shutil.copytree({str(third.path)!r}, {str(aside)!r})\n"
        f"os.rename({str(aside)!r}, {str(store.root / third.run_id)!r})\n"
        f"print(time.time())", store)
    took = within(counts_runs(app, 3), stored)
    assert took is not None and took <= WITHIN, f"the new run was not shown {WITHIN:g} s after it was stored"
    print(f"the new run was shown {took:.2f} s after it was stored")
    app.settle()
    app.screenshot("live-compare")
    app.assert_healthy()


def test_the_sidebar_counts_a_run_launched_elsewhere_and_drops_it_when_it_ends(app, live_server):
    _, store, _ = live_server
    app.open("compare")
    assert within(lambda: app.page.get_by_role("heading", name="Compare").count() > 0, time.time(), 30)
    app.settle()
    assert not in_progress(app, 1)()

    launched = elsewhere(  # queued without a worker: it stays in progress until cancelled
        "import time\n"
        "from mnistlab import RunConfig, RunStore\n"
        "from mnistlab.runs import worker as jobs\n"
        "queued = jobs.enqueue(RunStore(), [RunConfig(arch='mlp', epochs=7, batch_size=32, train_size=300,\n"
        "                                             validation='fraction', data='sample')])\n"
        "assert queued, 'nothing was queued (is this configuration stored already?)'\n"
        "print(time.time())", store)
    took = within(in_progress(app, 1), launched)
    assert took is not None and took <= WITHIN, f"the sidebar did not count the run {WITHIN:g} s after its launch"
    print(f"the sidebar counted the run {took:.2f} s after its launch")

    ended = elsewhere(
        "import time\n"
        "from mnistlab import RunStore\n"
        "store = RunStore()\n"
        "for attempt in store.live.active():\n"
        "    store.live.request_cancel(attempt.id)\n"
        "print(time.time())", store)
    took = within(lambda: not in_progress(app, 1)(), ended)
    assert took is not None and took <= WITHIN, f"the sidebar still counted the run {WITHIN:g} s after it ended"
    print(f"the sidebar dropped the run {took:.2f} s after it ended")
    app.settle()
    app.assert_healthy()
