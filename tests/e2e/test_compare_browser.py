"""The Compare page in a real Chromium against the real server, on a store of 12 synthetic runs
(tests.synthetic: valid runs written without training, in a second or two).

What a unit test of the figure cannot see: the panels' real size on the page, the legend as
drawn, the table's colour swatches as painted on its canvas (glide data grid) against the
chart's trace colours, side-by-side titles that do not run into each other at the page's real
width, and a tick in the table adding a run to the chart.
"""

from __future__ import annotations

import io
import re
import time

import pytest

from mnistlab import RunStore
from mnistlab.analysis import comparison
from tests.e2e.conftest import Page, running_server
from tests.synthetic import synthetic_configs, write_runs

pytestmark = pytest.mark.browser

PANELS = ".st-key-compare_panels"
SIDE = ".st-key-compare_side"
TABLE = '.st-key-compare_table [data-testid="stDataFrame"]'
#: glide data grid as Streamlit draws it: a header row, then rows of this many CSS pixels.
ROW = 35
HEADER = 35
#: A ticked row's run is in the chart within this many seconds (typically under one).
PICKED_WITHIN = 10
#: A swatch pixel may differ from the trace colour by this much per channel (anti-aliasing, colour management).
TOLERANCE = 6


@pytest.fixture(scope="module")
def compare_server(browser, tmp_path_factory):
    """A server on a store of 12 synthetic runs: (base URL, run ids in write order, {id: Run})."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    store = RunStore(root)
    ids = write_runs(store, synthetic_configs(12))
    runs = {run_id: store.load(run_id) for run_id in ids}
    with running_server(root) as base:
        yield base, ids, runs


@pytest.fixture
def app(browser, compare_server):
    base, _, _ = compare_server
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = Page(context.new_page(), base)
    yield page
    context.close()


@pytest.fixture
def laptop(browser, compare_server):
    """The app at a laptop's size (as tests/e2e/test_first_hour_browser.py): narrower side-by-side columns."""
    base, _, _ = compare_server
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = Page(context.new_page(), base)
    yield page
    context.close()


def wait_until(predicate, seconds: float = 30, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def open_compare(app, ids, **params) -> None:
    query = "&".join([f"runs={','.join(ids)}", *(f"{k}={v}" for k, v in params.items())])
    app.open(f"compare?{query}")
    chart = SIDE if params.get("mode", "").startswith("side") else PANELS
    app.page.wait_for_selector(f'{chart} [data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    app.page.wait_for_selector(f'{TABLE} [data-testid="data-grid-canvas"]', timeout=30_000)
    if len(ids) >= 12:  # the store's 12 runs: "what mattered" is estimated, then the page reruns once
        app.page.get_by_text("Permutation importance", exact=False).first.wait_for(timeout=60_000)
    app.settle()


def figure(app, chart: str = PANELS) -> dict:
    """What Plotly drew: every trace's name, legend group, legend flag and colours, and each panel's
    plot-area height (y-axis domain length times the plot height)."""
    script = """(chart) => {
        const graph = document.querySelector(chart + ' .js-plotly-plot');
        if (!graph || !graph._fullLayout || !graph._fullData) return null;  // between two drawings
        const layout = graph._fullLayout;
        const panels = Object.keys(layout).filter(k => /^yaxis\\d*$/.test(k))
            .map(k => (layout[k].domain[1] - layout[k].domain[0]) * layout._size.h);
        const traces = graph._fullData.map(t => ({
            name: t.name, group: t.legendgroup, legend: t.showlegend !== false,
            colors: [t.line && t.line.color, t.marker && typeof t.marker.color === 'string' ? t.marker.color : null]
                .filter(c => c)}));
        return {panels, traces};
    }"""
    drawn = {}
    assert wait_until(lambda: drawn.update(found=app.page.evaluate(script, chart)) or drawn["found"], 20), \
        f"no Plotly figure in {chart}"
    return drawn["found"]


def legend_entries(app, chart: str = PANELS) -> list[str]:
    return [t.strip() for t in app.page.locator(f"{chart} .legendtext").all_text_contents()]


def run_legend(app, runs) -> list[str]:
    """The legend names of the runs' entries (not the 'training' / 'validation' keys)."""
    return [t["name"] for t in figure(app)["traces"] if t["legend"] and t["group"] in runs]


def table_rows(app) -> list[dict]:
    """Each row of the table as glide lays it out for screen readers: its index, whether it is
    ticked, its label and the swatch image's address (None without one)."""
    return app.page.evaluate("""(table) => {
        const grid = document.querySelector(table);
        return [...grid.querySelectorAll('tbody tr[aria-rowindex]')].map(tr => {
            const row = Number(tr.getAttribute('aria-rowindex')) - 2;
            const cell = (col) => grid.querySelector(`[data-testid="glide-cell-${col}-${row}"]`);
            const swatch = cell(1) ? cell(1).textContent : '';
            return {row, ticked: tr.getAttribute('aria-selected') === 'true',
                    label: cell(2) ? cell(2).textContent : null,
                    swatch: swatch.startsWith('data:image') ? swatch : null};
        });
    }""", TABLE)


def canvas(app):
    return app.page.locator(f'{TABLE} [data-testid="data-grid-canvas"]')


def scroll_top(app) -> float:
    return app.page.locator(f"{TABLE} .dvn-scroller").evaluate("e => e.scrollTop")


def row_centre_y(app, box: dict, row: int) -> float:
    """The row's vertical centre on the page (the header stays put while the rows scroll)."""
    return box["y"] + HEADER + ROW * row + ROW / 2 - scroll_top(app)


def swatch_pixel(image, y: int, within: int = 160) -> tuple[int, int, int] | None:
    """The colour of the widest stretch of one colour in the first ``within`` pixels of row ``y`` of
    the canvas image, if at least 16 pixels wide: the swatch (the checkbox and the padding around
    text are narrower)."""
    pixels = [image.getpixel((x, y)) for x in range(min(within, image.width))]
    best, start = (0, None), 0
    for x in range(1, len(pixels) + 1):
        if x == len(pixels) or max(abs(a - b) for a, b in zip(pixels[x], pixels[start])) > 2:
            if x - start > best[0]:
                best = (x - start, pixels[start + (x - start) // 2])
            start = x
    return best[1] if best[0] >= 16 else None


def rgb(color: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"#?([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})", color.strip())
    if match:
        return tuple(int(g, 16) for g in match.groups())
    match = re.fullmatch(r"rgba?\((\d+),\s*(\d+),\s*(\d+).*\)", color.strip())
    assert match, f"not a colour: {color!r}"
    return tuple(int(g) for g in match.groups())


def close(a, b, tolerance: int = TOLERANCE) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def painted_swatches(app) -> dict[int, tuple[int, int, int]]:
    """{row: the swatch colour as painted on the table's canvas}, for every ticked row; rows out of
    view are scrolled into it (the grid shows about eleven)."""
    from PIL import Image

    grid = canvas(app)
    wanted = {r["row"] for r in table_rows(app) if r["ticked"]}
    seen: dict[int, tuple[int, int, int]] = {}
    for _ in range(4):
        box = grid.bounding_box()
        image = Image.open(io.BytesIO(app.page.screenshot(clip=box))).convert("RGB")
        for row in sorted(wanted - set(seen)):
            y = row_centre_y(app, box, row) - box["y"]
            if HEADER + ROW / 2 - 4 <= y <= box["height"] - ROW / 2 + 4:  # wholly in view
                color = swatch_pixel(image, round(y))
                if color is not None:
                    seen[row] = color
        if wanted <= set(seen):
            break
        before = scroll_top(app)
        app.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        app.page.mouse.wheel(0, 8 * ROW)
        wait_until(lambda before=before: scroll_top(app) != before, 5)
        time.sleep(0.5)  # let the canvas repaint
    return seen


def test_twelve_runs_overlaid_get_tall_panels_short_legend_names_and_the_colours_of_their_swatches(
        app, compare_server):
    _, ids, runs = compare_server
    open_compare(app, ids)
    drawn = figure(app)

    # One panel per metric, each with at least 380 px of plot area: by the layout, and as drawn.
    assert len(drawn["panels"]) == 2, drawn["panels"]
    assert all(height >= 380 for height in drawn["panels"]), drawn["panels"]
    areas = app.page.locator(f"{PANELS} .nsewdrag")
    assert areas.count() == 2
    heights = [areas.nth(i).bounding_box()["height"] for i in range(2)]
    assert all(height >= 380 for height in heights), heights

    # The legend names each run by what differs only ("mlp · sgd · bs32"), not by its whole label.
    names = comparison.short_names(list(runs.values()))
    legend = run_legend(app, runs)
    assert sorted(legend) == sorted(names.values())
    for run_id, name in names.items():
        assert "digits" not in name and "10ep" not in name and name != runs[run_id].label, name
        assert re.fullmatch(r"(mlp|cnn|deep_cnn) · (sgd|adam|rmsprop) · bs(32|128)", name), name
    shown = legend_entries(app)
    assert set(names.values()) <= set(shown), shown
    assert not any("digits" in entry for entry in shown), shown

    # One colour per run in the chart: every trace of the run (training, validation, both panels, the star).
    colors: dict[str, set] = {}
    for trace in drawn["traces"]:
        if trace["group"] in runs:
            colors.setdefault(trace["group"], set()).update(rgb(c) for c in trace["colors"])
    assert set(colors) == set(runs)
    assert all(len(c) == 1 for c in colors.values()), colors
    trace_color = {run_id: next(iter(c)) for run_id, c in colors.items()}
    assert len(set(trace_color.values())) == 12  # twelve runs, twelve colours

    # The table's swatch of each run is that colour: in the image the cell holds, and as painted.
    by_label = {run.label: run_id for run_id, run in runs.items()}
    rows = table_rows(app)
    assert len(rows) == 12 and all(r["ticked"] for r in rows), rows
    row_run = {}
    for r in rows:
        run_id = by_label[r["label"]]
        row_run[r["row"]] = run_id
        fill = re.search(r"fill='%23([0-9a-fA-F]{6})'", r["swatch"] or "")
        assert fill, r
        assert rgb(fill.group(1)) == trace_color[run_id], (r["label"], fill.group(1))
    painted = painted_swatches(app)
    assert set(painted) == set(row_run), f"swatches found in rows {sorted(painted)}"
    for row, pixel in painted.items():
        run_id = row_run[row]
        assert close(pixel, trace_color[run_id]), (runs[run_id].label, pixel, trace_color[run_id])
    app.assert_healthy()


#: Six runs whose side-by-side titles are as long as these runs' get ("deep_cnn · rmsprop · bs32").
LONG_NAMED = [8, 5, 2, 11, 7, 10]  # indices into synthetic_configs(12)


def test_side_by_side_with_six_runs_has_no_overlapping_titles_at_laptop_size(laptop, compare_server):
    _, ids, runs = compare_server
    chosen = [ids[i] for i in LONG_NAMED]
    open_compare(laptop, chosen, mode="side%20by%20side")
    laptop.page.locator(SIDE).scroll_into_view_if_needed()
    assert len(figure(laptop, SIDE)["panels"]) == 2 * 6  # side by side indeed: loss and accuracy per run
    boxes = laptop.page.evaluate("""(chart) => {
        const box = (e) => { const r = e.getBoundingClientRect();
                             return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
        return {titles: [...document.querySelectorAll(chart + ' g.annotation .annotation-text-g')].map(box),
                legend: [...document.querySelectorAll(chart + ' g.legend')].map(box)};
    }""", SIDE)
    titles = boxes["titles"]
    names = comparison.short_names([runs[i] for i in chosen])
    assert max(len(n) for n in names.values()) >= 22  # long titles: the case where they could collide
    assert len(titles) == 6, [t["text"] for t in titles]
    assert all(t["right"] - t["left"] > 10 for t in titles), titles  # drawn, not empty
    assert len(boxes["legend"]) == 1, boxes["legend"]  # training · validation · kept epoch

    def apart(a, b) -> bool:
        return a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or b["bottom"] <= a["top"]

    for i, a in enumerate(titles):
        for b in titles[i + 1:]:
            assert apart(a, b), f"the titles {a['text']!r} and {b['text']!r} overlap: {a} {b}"
        assert apart(a, boxes["legend"][0]), f"the title {a['text']!r} runs into the legend: {a} {boxes['legend'][0]}"
    laptop.assert_healthy()


def test_ticking_a_row_of_the_table_adds_its_run_to_the_chart(app, compare_server):
    _, ids, runs = compare_server
    open_compare(app, ids[:2])
    assert wait_until(lambda: len(run_legend(app, runs)) == 2, 30), run_legend(app, runs)
    by_label = {run.label: run_id for run_id, run in runs.items()}
    rows = table_rows(app)
    assert sorted(by_label[r["label"]] for r in rows if r["ticked"]) == sorted(ids[:2])
    target = next(r for r in rows if not r["ticked"] and r["row"] < 8)  # in view without scrolling
    added = by_label[target["label"]]

    box = canvas(app).bounding_box()
    x = box["x"] + 16  # the checkbox column
    y = row_centre_y(app, box, target["row"])
    started = time.monotonic()
    app.page.mouse.click(x, y)
    in_legend = lambda: added in {t["group"] for t in figure(app)["traces"] if t["legend"]}
    assert wait_until(in_legend, PICKED_WITHIN), (target, run_legend(app, runs))
    assert time.monotonic() - started < PICKED_WITHIN
    assert len(run_legend(app, runs)) == 3, run_legend(app, runs)
    assert wait_until(lambda: any(r["ticked"] and r["row"] == target["row"] for r in table_rows(app)), 10)
    assert added[:4] in app.page.url  # the link follows the selection
    app.settle()
    app.assert_healthy()
