"""Untrusted text is text on every page: hostile share links and hostile stored runs.

Every payload goes through every query parameter of Compare, Inspect and Filters, and
through the data title and reason of stored runs; then the whole element tree is walked and
every string Streamlit would render as Markdown is checked for syntax left live (outside
backslash escapes and code spans). Plotly specs are checked for raw HTML.
"""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from pages import common
from tests.app.conftest import PAGES, open_link, select_runs
from tests.conftest import ROOT
from tests.test_text import live_markup

LONG = "L" + "x" * 4999
PAYLOADS = [
    "![x](http://evil.example/x.png)",
    "[click](http://evil.example)",
    "<img src=http://evil.example/y.png>",
    "<script>alert(1)</script>",
    ":red[boom] :material/home:",
    "$$\\int$$",
    LONG,
]
#: Syntax that must not be live in any Markdown source on a page.
LIVE = ("](http", "[click]", "<img", "<script", ":red[", ":material/home", "$$", "http://evil", "evil.example")
#: Raw HTML that must not reach a Plotly figure.
RAW_HTML = ("<img", "<script", "<a ", "<a>")
FAKE = "0123456789abcdef"
FAKE2 = "fedcba9876543210"

LINK_PARAMS = {
    "pages/compare.py": {
        "runs": lambda p: ",".join([p, f"{FAKE}~{p}", f"{FAKE2}~cnn~o:{p}"]),
        "mode": str, "metric": str, "x": str, "smoothing": str,
    },
    "pages/inspect.py": {
        "run": lambda p: f"{FAKE}~{p}", "vs": str, "true": str, "pred": str, "norm": str,
    },
    "pages/filters.py": {
        "digit": str, "preset": str, "kernel": str, "pad": str, "relu": str,
    },
}



def _strings(message, path=""):
    """Every string field of a protobuf message, with its field path."""
    for field, value in message.ListFields():
        if field.name == "id" or field.name.endswith("_id"):  # widget and form identities, not shown
            continue
        if hasattr(value, "items"):  # a map field
            values = [item for pair in value.items() for item in pair]
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            name = f"{path}.{field.name}"
            if isinstance(item, str):
                yield name, item
            elif hasattr(item, "ListFields"):
                yield from _strings(item, name)


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def rendered_sources(app: AppTest):
    """(element type, field, text) for every string in the page's element tree, main and sidebar."""
    for root in (app.main, app.sidebar):
        for node in _nodes(root):
            proto = getattr(node, "proto", None)
            if proto is not None and hasattr(proto, "ListFields"):
                for field, text in _strings(proto):
                    yield node.type, field, text


def problems(app: AppTest) -> list[str]:
    """What a page shows unsafely: live Markdown syntax, raw HTML in charts, an uncut long value."""
    found = [f"exception: {e.value}" for e in app.exception]
    for kind, field, text in rendered_sources(app):
        if "x" * 1001 in text:
            found.append(f"{kind}{field}: an untrusted value shown uncut ({len(text)} characters)")
        if kind == "plotly_chart":
            found += [f"{kind}{field}: raw {html!r}" for html in RAW_HTML if html in text]
        elif kind == "code" and field.endswith("code_text"):
            continue  # a code block shows its text as it is
        elif kind == "html" and text in (common._plotly_loader(), common.PLOTLY_LOADER_STYLE):
            continue  # the app's own constant script and style (tests/app/test_plotly_loader.py), no data in it
        else:
            live = live_markup(text)
            found += [f"{kind}{field}: live {syntax!r} in {text[:120]!r}" for syntax in LIVE if syntax in live]
    return found


@pytest.mark.parametrize("page", list(LINK_PARAMS))
def test_hostile_link_values_are_shown_as_text(filled_store, page):
    """Each parameter gets each payload once (rotated, so a run carries one per parameter)."""
    names = list(LINK_PARAMS[page])
    for shift in range(len(PAYLOADS)):
        params = {name: LINK_PARAMS[page][name](PAYLOADS[(i + shift) % len(PAYLOADS)])
                  for i, name in enumerate(names)}
        app = open_link(page, params)
        assert problems(app) == [], (page, params)
        assert app.warning, (page, "the ignored values are named in warnings")


def _set_data_strings(document, title: str, reason: str) -> int:
    """Set title/reason of every ``data`` dict with them, wherever it is in a JSON document."""
    changed = 0
    if isinstance(document, dict):
        data = document.get("data")
        if isinstance(data, dict) and ("title" in data or "reason" in data):
            data["title"], data["reason"] = title, reason
            changed += 1
        for value in document.values():
            changed += _set_data_strings(value, title, reason)
    elif isinstance(document, list):
        for value in document:
            changed += _set_data_strings(value, title, reason)
    return changed


SHORT = [p for p in PAYLOADS if p is not LONG]
HOSTILE_DATA = {  # run -> (data title, data reason)
    "mlp": (" ".join(SHORT), " ".join(reversed(SHORT))),
    "cnn": (LONG, "<script>alert(1)</script>"),
    "cnn_parity": ("$$\\int$$ :red[boom]", LONG),
}


@pytest.fixture
def hostile_store(trained_store, tmp_path, monkeypatch):
    """Copies of the trained runs whose stored data title and reason are hostile."""
    _, runs = trained_store
    root = tmp_path / "hostile"
    root.mkdir()
    for name, (title, reason) in HOSTILE_DATA.items():
        target = root / runs[name].run_id
        shutil.copytree(runs[name].path, target)
        changed = 0
        for path in target.rglob("*.json"):
            document = json.loads(path.read_text(encoding="utf-8"))
            if _set_data_strings(document, title, reason):
                path.write_text(json.dumps(document), encoding="utf-8")
                changed += 1
        assert changed, f"no data title/reason found in {name}'s run files"
    monkeypatch.setenv("MNISTLAB_STORE", str(root))
    from mnistlab import RunStore

    return RunStore(root), runs


def _open(page: str) -> AppTest:
    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    app.run()
    if page != "pages/train.py":
        app.switch_page(page).run()
    return app


@pytest.mark.parametrize("page", PAGES)
def test_hostile_stored_data_titles_and_reasons_are_shown_as_text(hostile_store, page):
    store, _ = hostile_store
    app = _open(page)
    assert problems(app) == [], page
    if page == "pages/compare.py":  # every stored run drawn too
        select_runs(app, [r.run_id for r in store.list_runs().runs])
        assert problems(app) == []


def test_train_shows_a_stored_run_with_a_hostile_data_title_as_text(hostile_store):
    """Train's result card names the run's data source: the hostile title, escaped."""
    store, runs = hostile_store
    config = runs["mlp"].config
    app = _open("pages/train.py")
    app.selectbox(key="train_arch").set_value(config.arch)
    app.number_input(key="train_epochs").set_value(config.epochs)
    app.selectbox(key="train_validation").set_value(config.validation)
    app.toggle(key="train_limit").set_value(True).run()
    app.number_input(key="train_size").set_value(config.train_size).run()
    assert problems(app) == []
    shown = [c.value for c in app.caption if "evil" in c.value]
    if store.lookup(runs["mlp"].run_id) is not None:  # the store accepted the copy: its title is on show
        assert shown, [c.value for c in app.caption]


def test_the_html_report_shows_hostile_data_titles_as_text(hostile_store):
    from mnistlab.views.report import comparison_report

    store, _ = hostile_store
    runs = store.list_runs().runs
    if not runs:
        pytest.skip("the store refused every hostile copy (nothing to report)")
    report = comparison_report(runs, title="<img src=http://evil.example/t.png> ![x](http://evil.example/x.png)")
    for raw in ("<img src=http://evil.example", "<script>alert(1)</script>", "x" * 1001):
        assert raw not in report
    assert "&lt;img src=http://evil.example/t.png&gt;" in report
