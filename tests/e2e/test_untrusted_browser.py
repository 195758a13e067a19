"""Hostile share links in a real Chromium: shown as text, nothing fetched from elsewhere."""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode, urlparse

import pytest

pytestmark = pytest.mark.browser

from tests.app.test_untrusted import LONG  # noqa: E402
from tests.app.test_untrusted import PAYLOADS as _ALL

PAYLOADS = [p for p in _ALL if p != LONG]
FAKE = "0123456789abcdef"
LINKS = {  # page -> its parameters; every payload is in each page's link
    "compare": ["runs", "mode", "metric", "x", "smoothing"],
    "inspect": ["run", "vs", "true", "pred", "norm"],
    "filters": ["digit", "preset", "kernel", "pad", "relu"],
}


def hostile_link(page: str) -> str:
    """Each parameter starts with another payload (a page quotes the start of a bad value)."""
    params = {}
    for i, name in enumerate(LINKS[page]):
        rotated = PAYLOADS[i:] + PAYLOADS[:i]
        params[name] = " ".join(rotated)
    params[LINKS[page][-1]] = LONG
    if page == "compare":
        params["runs"] = ",".join(PAYLOADS + [f"{FAKE}~{p}" for p in PAYLOADS])
    elif page == "inspect":
        params["run"] = f"{FAKE}~{PAYLOADS[0]}"
    return f"{page}?{urlencode(params, quote_via=quote)}"


def test_hostile_links_render_as_text_and_fetch_nothing_from_other_hosts(app):
    requests: list[str] = []
    app.page.on("request", lambda request: requests.append(request.url))
    own = urlparse(app.base).netloc
    for page in LINKS:
        app.open(hostile_link(page))
        time.sleep(1.0)  # let lazily loaded parts (KaTeX, images, charts) ask for what they would
        main = app.page.locator('[data-testid="stMain"]')
        assert main.locator('[data-testid="stAlertContentWarning"]').count() >= 1, page  # the values are named
        assert main.locator('a[href*="evil"], img[src*="evil"], script[src*="evil"]').count() == 0, page
        assert main.locator(".katex, .stMarkdownColoredText, .stMarkdownColoredBackground").count() == 0, page
        assert "evil.example" in main.inner_text(), page  # shown, as text
        app.assert_healthy()
    foreign = [url for url in requests if urlparse(url).scheme in ("http", "https", "ws", "wss")
               and urlparse(url).netloc != own]
    assert foreign == []
    assert any(urlparse(url).netloc == own for url in requests)  # the listener did see the app's own requests
