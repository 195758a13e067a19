"""What a person does in the app, in a real Chromium against the real server."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.browser

PLOT = '[data-testid="stPlotlyChart"]'


def wait_until(predicate, seconds: float = 60, step: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def set_number(app, label: str, value: int) -> None:
    box = app.page.get_by_role("spinbutton", name=label).first
    box.fill(str(value))
    box.press("Enter")
    app.settle()


def choose(app, label: str, option: str) -> None:
    """Pick an option of a selectbox by its label."""
    app.page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    app.page.get_by_role("option", name=option, exact=True).click()
    app.settle()


def configure_tiny_run(app, epochs: int) -> None:
    choose(app, "Architecture", "mlp  (Keras MNIST recipe (MLP))")
    set_number(app, "Epochs", epochs)
    choose(app, "Validation", "fraction: Keras validation_split of the training images")
    app.page.get_by_text("Training-set size, early stopping, seed").click()
    app.page.get_by_text("Use only the first N training images").click()
    app.settle()
    set_number(app, "Training images", 3000)


def test_train_shows_live_progress_then_the_result_and_then_marks_it_cached(app):
    app.open()
    configure_tiny_run(app, epochs=40)
    app.page.get_by_role("button", name=re.compile(r"^Train mlp")).click()
    progress = app.page.locator('[data-testid="stProgress"]')
    assert wait_until(lambda: progress.count() > 0, 60), "no progress bar appeared"
    seen = set()

    def epochs_seen():
        text = progress.first.inner_text() if progress.count() else ""
        match = re.search(r"Epoch (\d+) of 40", text)
        if match:
            seen.add(int(match.group(1)))
        return len(seen) >= 2 and max(seen) > min(seen)

    assert wait_until(epochs_seen, 120), f"the progress bar did not advance: {seen}"
    # The only chart while an unstored configuration trains is the live one in its progress card.
    assert wait_until(lambda: progress.count() > 0 and traces(app) >= 2, 60), "no live curves"
    app.screenshot("train-progress")
    assert wait_until(lambda: app.page.get_by_text("Trained just now").count() > 0, 180), "training never finished"
    app.settle()
    app.assert_healthy()

    app.open()  # a reload: same configuration again
    configure_tiny_run(app, epochs=40)
    assert app.page.get_by_text("Cached: this configuration is already in the store").count() == 1
    assert app.page.get_by_role("button", name=re.compile(r"^Train mlp")).count() == 0
    app.screenshot("train")
    app.assert_healthy()


def traces(app, selector=".scatterlayer .trace"):
    return app.page.locator(f"{PLOT} {selector}").count()


PANELS = ".st-key-compare_panels"


def legend_names(app, chart: str = PANELS) -> list[str]:
    return app.page.locator(f"{chart} .legendtext").evaluate_all("els => els.map(e => e.textContent)")


def test_compare_draws_every_run_switches_views_and_downloads_csv(app, e2e_store):
    app.open()
    app.goto_page("Compare")
    # The first visit draws the newest runs, one panel per metric, legends naming what differs.
    def archs_named():  # other tests may have added runs: names then list more than the architecture
        return {name.split(" · ")[0] for name in legend_names(app)}

    assert wait_until(lambda: {"mlp", "cnn"} <= archs_named(), 30), legend_names(app)
    assert "digits" not in " ".join(legend_names(app))  # shared by all: said in the caption, not the legend
    panel_traces = app.page.locator(f"{PANELS} {PLOT} .scatterlayer .trace")
    assert wait_until(lambda: panel_traces.count() >= 2 * 2 * 2, 30)  # runs x (loss, accuracy) x (train, val)
    app.screenshot("compare")
    app.page.get_by_text("side by side", exact=True).click()
    app.settle()
    side = ".st-key-compare_side"
    assert wait_until(lambda: app.page.locator(f"{side} {PLOT} .annotation").count() >= 2, 30)
    before = app.page.locator(f"{side} {PLOT} .scatterlayer .trace").count()
    slider = app.page.locator('[data-testid="stSlider"] input[type="range"]').first
    for _ in range(3):  # a key press that lands while the page reruns can be lost: try again
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        app.settle()
        if wait_until(lambda: app.page.locator(f"{side} {PLOT} .scatterlayer .trace").count() > before, 10):
            break
    assert app.page.locator(f"{side} {PLOT} .scatterlayer .trace").count() > before  # faint raw curves
    assert float(re.search(r"smoothing=([0-9.]+)", app.page.url).group(1)) > 0  # the link follows the view
    with app.page.expect_download() as download:
        app.page.get_by_role("button", name="Histories (CSV)").click()
    csv = open(download.value.path()).read()
    assert csv.splitlines()[0].startswith("run_id,label,epoch")
    app.assert_healthy()


def test_a_shared_compare_link_opens_the_same_view(app, e2e_store):
    _, runs = e2e_store
    app.open()
    app.goto_page("Compare")
    assert wait_until(lambda: len(legend_names(app)) >= 2, 30)
    app.page.get_by_text("side by side", exact=True).click()
    app.settle()
    assert wait_until(lambda: "mode=side" in app.page.url, 30), app.page.url
    shared = app.page.url
    assert runs["mlp"].run_id[:4] in shared
    app.page.goto("about:blank")
    app.page.goto(shared)
    app.settle()
    assert wait_until(lambda: app.page.locator(f".st-key-compare_side {PLOT} .annotation").count() >= 2, 30)
    app.assert_healthy()


def test_inspect_draws_the_confusion_matrix_and_the_mistakes(app):
    app.open()
    app.goto_page("Inspect")
    assert wait_until(lambda: app.page.locator(f"{PLOT} .heatmaplayer").count() >= 1, 30)
    images = app.page.locator('[data-testid="stImage"] img')
    assert wait_until(lambda: images.count() > 0, 30)
    assert images.first.evaluate("img => img.naturalWidth") == 28
    app.screenshot("inspect")

    # Clicking a cell of the matrix (true 3, predicted 5) shows those digits.
    area = app.page.locator(f"{PLOT} .nsewdrag").first.bounding_box()
    x, y = area["x"] + area["width"] * 5.5 / 10, area["y"] + area["height"] * 3.5 / 10
    app.page.mouse.move(x, y)
    app.page.mouse.click(x, y)
    app.settle()
    assert wait_until(lambda: "true=3" in app.page.url and "pred=5" in app.page.url, 30), app.page.url
    captions = app.page.locator('[data-testid="stImageCaption"]')
    mistakes = lambda: [c for c in captions.all_inner_texts() if "→" in c]  # noqa: E731  (not the two-run galleries)
    assert wait_until(lambda: all("3→5" in c for c in mistakes()) and
                      (mistakes() or app.page.get_by_text("No digits here.").count() > 0), 30)
    app.assert_healthy()


def test_filters_preset_changes_the_output(app):
    app.open()
    app.goto_page("Filters")
    caption = app.page.get_by_text(re.compile(r"^Output values from"))
    assert wait_until(lambda: caption.count() == 1, 30)
    identity = caption.inner_text()
    choose(app, "Preset", "sobel x")
    assert wait_until(lambda: caption.inner_text() != identity, 30)
    assert app.page.locator(f"{PLOT} .heatmaplayer").count() >= 3
    assert "preset=sobel+x" in app.page.url or "preset=sobel%20x" in app.page.url
    app.screenshot("filters")
    app.assert_healthy()


def test_data_shows_a_grid_of_25_samples(app):
    app.open()
    app.goto_page("Data")
    # drawn as pictures (not a grid of Plotly heatmaps, slow to draw), each with its label under it
    captions = app.page.locator('[data-testid="stImageCaption"]')
    assert wait_until(lambda: captions.count() == 25, 30)
    assert set(captions.all_inner_texts()) <= {str(d) for d in range(10)}
    assert app.page.locator(f"{PLOT} .main-svg").count() >= 2  # the class counts and the pixel matrix
    app.screenshot("data")
    app.assert_healthy()
