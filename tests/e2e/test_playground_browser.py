"""The Playground and Inspect in a real Chromium: draw on the pad, and the runs' answers appear and change;
the layers of the deepest run show; Inspect's epoch slider changes the matrix; hostile links are named."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser


def _stroke(page, box, points):
    scale = box["width"] / 256  # the pad is at most 256 px wide, narrower in a narrow column
    page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=6)
    page.mouse.up()


def _answers(app) -> str:
    charts = app.page.locator(".stPlotlyChart .gtitle")
    return " | ".join(t for t in charts.evaluate_all("els => els.map(e => e.textContent || '')") if "→" in t)


def _wait_for_change(app, before: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.settle(5)
        now = _answers(app)
        if now and now != before:
            return now
        time.sleep(0.3)
    return _answers(app)


def _wait_for_text(app, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = app.page.inner_text("body")
        if re.search(pattern, body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} did not show; the page says: {body[:2000]}")


def test_drawing_on_the_pad_changes_the_predictions(app, e2e_store):
    _, runs = e2e_store
    ids = ",".join(run.run_id for run in runs.values())
    app.open(f"playground?runs={ids}&source=draw")
    canvas = app.page.locator(".mnist-pad canvas")
    canvas.wait_for(timeout=30_000)
    assert "Draw a digit on the pad" in app.page.inner_text("body")
    box = canvas.bounding_box()
    pad_column = app.page.locator('[data-testid="stColumn"]').first.bounding_box()
    assert box["x"] + box["width"] <= pad_column["x"] + pad_column["width"] + 1  # the pad stays in its column
    _stroke(app.page, box, [(80, 60), (200, 60), (150, 150), (110, 240)])  # a 7
    first = _wait_for_change(app, "")
    assert first.count("%") >= len(runs), first  # one answer (with its probability) per run
    assert "drawn=z" in app.page.url  # the drawing travels in the link
    body = _wait_for_text(app, r"runs say|disagree")  # the flag says who answers what, plurals right
    assert "run(s)" not in body
    _stroke(app.page, box, [(100, 150), (200, 150)])  # a bar across: the answers move
    second = _wait_for_change(app, first)
    assert second != first
    app.page.get_by_text("Inside one run, layer by layer").wait_for(timeout=20_000)
    # The deepest selected run is the one looked inside: its Conv2D feature maps are drawn.
    app.page.get_by_text(re.compile(r"^1\. Conv2D")).first.wait_for(timeout=20_000)
    maps = app.page.locator('.st-key-playground_layer_1 img[src^="data:image/png"]')  # pictures, not heatmaps
    deadline = time.monotonic() + 20
    while maps.count() < 32 and time.monotonic() < deadline:  # one map per filter of the first Conv2D (32)
        time.sleep(0.3)
    assert maps.count() == 32
    app.screenshot("playground")
    app.assert_healthy()


def test_a_garbage_digit_in_the_link_is_named_not_a_traceback(app, e2e_store):
    _, runs = e2e_store
    app.open(f"playground?runs={runs['cnn'].run_id}&source=test&digit=%3F&drawn=%3F")
    body = _wait_for_text(app, r"Ignored the link's 'digit'")
    assert "Ignored the link's 'drawn'" in body
    assert _wait_for_change(app, "")  # the page goes on with test digit 0
    app.assert_healthy()


def _matrix_numbers(app) -> str:
    return app.page.locator(".stPlotlyChart").first.locator("text").evaluate_all(
        "els => els.map(e => e.textContent).join(' ')")


def test_inspect_scrubs_the_epochs_and_says_whether_b_beats_a(app, e2e_store):
    _, runs = e2e_store
    cnn, mlp = runs["cnn"], runs["mlp"]
    app.open(f"inspect?run={cnn.run_id}&vs={mlp.run_id}")
    total = cnn.metrics["epochs_run"]
    _wait_for_text(app, rf"the kept model, epoch {cnn.kept_epoch} of {total}")
    last = _matrix_numbers(app)
    slider = app.page.locator('[data-testid="stSlider"] input[type=range]').first
    slider.focus()
    app.page.keyboard.press("Home")
    app.settle()
    _wait_for_text(app, rf"Confusion matrix — epoch 1 of {total}")
    assert "epoch=1" in app.page.url
    assert _matrix_numbers(app) != last  # the matrix of epoch 1 is not the kept model's
    body = _wait_for_text(app, r"Is run B really better than run A\?")
    sentence = app.page.locator('[data-testid="stAlertContentInfo"]').filter(has_text="run A").first.inner_text()
    assert "run B" in sentence and "(s)" not in sentence
    for value in app.page.locator('[data-testid="stMetricValue"]').all():  # numbers on one line each
        assert value.bounding_box()["height"] < 70, value.inner_text()
    assert "Only A right" in body and "Accuracy B − A" in body
    app.assert_healthy()


def test_a_garbage_epoch_in_the_link_is_named_not_a_traceback(app, e2e_store):
    _, runs = e2e_store
    app.open(f"inspect?run={runs['cnn'].run_id}&epoch=%3F")
    _wait_for_text(app, r"Ignored the link's 'epoch'")
    _wait_for_text(app, r"the kept model, epoch")
    app.assert_healthy()
