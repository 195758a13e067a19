"""Plotly's JavaScript (a 4.7 MB chunk of Streamlit's) is loaded early and once per browser session: a
page that opens on a chart asks for it before its own work, Train after it has drawn itself."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Page

pytestmark = pytest.mark.browser

PLOTLY_FETCHES = """() => performance.getEntriesByType("resource")
    .filter(e => /\\/PlotlyChart\\.[^/]*\\.js$/.test(e.name)).map(e => e.startTime)"""


def fresh(browser, server) -> tuple[Page, object]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    return Page(context.new_page(), server), context


def test_train_loads_plotly_after_it_is_drawn_and_the_loader_takes_no_space(browser, server):
    app, context = fresh(browser, server)
    try:
        app.open()
        app.page.wait_for_selector('button:has-text("Train cnn")', timeout=30_000)
        app.page.wait_for_function(f"({PLOTLY_FETCHES})().length > 0", timeout=30_000)
        assert app.page.locator('[data-testid="stPlotlyChart"]').count() == 0  # Train drew no chart itself
        loader = app.page.locator(".st-key-plotly_loader")
        assert loader.count() == 1 and loader.bounding_box() is None  # hidden: no gap in the page
        app.goto_page("Data")  # the chunk is in: the next page's chart draws without asking again
        app.page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)
        assert len(app.page.evaluate(PLOTLY_FETCHES)) == 1
        app.assert_healthy()
    finally:
        context.close()


def test_a_page_that_opens_on_a_chart_fetches_plotly_once_and_draws_it(browser, server):
    app, context = fresh(browser, server)
    try:
        app.open("data")
        app.page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=30_000)
        assert len(app.page.evaluate(PLOTLY_FETCHES)) == 1  # the loader's import and the chart's are one module
        app.assert_healthy()
    finally:
        context.close()
