"""The Playground in a real Chromium: draw on the pad, and the runs' answers appear and change."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser


def _stroke(page, box, points):
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
    page.mouse.up()


def _answers(app) -> str:
    charts = app.page.locator(".stPlotlyChart .gtitle")
    return " | ".join(charts.evaluate_all("els => els.map(e => e.textContent || '')"))


def _wait_for_change(app, before: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.settle(5)
        now = _answers(app)
        if now and now != before:
            return now
        time.sleep(0.3)
    return _answers(app)


def test_drawing_on_the_pad_changes_the_predictions(app, e2e_store):
    _, runs = e2e_store
    ids = ",".join(run.run_id for run in runs.values())
    app.open(f"playground?runs={ids}&source=draw")
    canvas = app.page.locator(".mnist-pad canvas")
    canvas.wait_for(timeout=30_000)
    assert "Draw a digit on the pad" in app.page.inner_text("body")
    box = canvas.bounding_box()
    _stroke(app.page, box, [(80, 60), (200, 60), (150, 150), (110, 240)])  # a 7
    first = _wait_for_change(app, "")
    assert first.count("%") >= len(runs), first  # one answer (with its probability) per run
    assert "drawn=z" in app.page.url  # the drawing travels in the link
    _stroke(app.page, box, [(100, 150), (200, 150)])  # a bar across: the answers move
    second = _wait_for_change(app, first)
    assert second != first
    app.page.get_by_text("Inside one run, layer by layer").wait_for(timeout=20_000)
    app.screenshot("playground")
    app.assert_healthy()
