"""A real Streamlit server and a real Chromium for end-to-end tests (marker: browser).

Chromium is Debian's package (/usr/bin/chromium), driven by Playwright without its own
browser download. Where either is missing the tests skip with the reason, except under
CI (CI=true), where that is a failure: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnistlab import RunStore
from tests.conftest import ROOT, tiny_config
from tests.serving import free_port, wait_healthy

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("MNISTLAB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _missing_browser(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"browser tests must run in CI: {reason} (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        _missing_browser("Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("Playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory):
    """A store filled by really training tiny runs through the library."""
    store = RunStore(tmp_path_factory.mktemp("e2e") / "runs")
    runs = {
        "mlp": store.get_or_train(tiny_config(arch="mlp", epochs=5, train_size=2000)).run,
        "cnn": store.get_or_train(tiny_config(arch="cnn", epochs=5, train_size=2000)).run,
    }
    return store, runs


@contextlib.contextmanager
def running_server(store_root):
    """A real Streamlit server of the app on ``store_root`` (writable, sample data, offline): its base URL."""
    port = free_port()
    env = {**os.environ, "MNISTLAB_STORE": str(store_root), "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
    env.pop("MNISTLAB_READ_ONLY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    if not wait_healthy(base):
        process.kill()
        pytest.fail("the Streamlit server did not become healthy: " + process.communicate()[0][-2000:])
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def server(e2e_store, browser):
    store, _ = e2e_store
    with running_server(store.root) as base:
        yield base


class Page:
    """One browser tab on the app, collecting console errors."""

    def __init__(self, page, base: str):
        self.page = page
        self.base = base
        self.console_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        # Streamlit's own known quirk (streamlit/streamlit#7074): opening a page URL directly
        # first asks <page>/_stcore/health and host-config (404), then the right addresses.
        self.known_404 = 0
        page.on("response", lambda r: self._note_404(r))

    def _note_404(self, response) -> None:
        if response.status == 404 and re.search(r"/[^/]+/_stcore/(health|host-config)$", response.url):
            self.known_404 += 1

    def open(self, path: str = "") -> None:
        self.page.goto(f"{self.base}/{path}")
        self.page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=30_000)
        self.settle()

    def settle(self, timeout: float = 30) -> None:
        """Wait until the script has finished running (no 'running' indicator)."""
        deadline = time.monotonic() + timeout
        time.sleep(0.3)
        while time.monotonic() < deadline:
            if self.page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() == 0:
                time.sleep(0.3)
                if self.page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() == 0:
                    return
            time.sleep(0.2)

    def goto_page(self, title: str) -> None:
        self.page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        self.page.wait_for_selector(f'h1:has-text("{title}")', timeout=30_000)
        self.settle()

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_healthy(self) -> None:
        assert self.page.locator('[data-testid="stException"]').count() == 0, "a Streamlit exception box is shown"
        errors = list(self.console_errors)
        for _ in range(self.known_404):
            quirk = next((e for e in errors if "status of 404" in e), None)
            if quirk is not None:
                errors.remove(quirk)
        assert errors == [], errors


@pytest.fixture
def app(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    page = Page(context.new_page(), server)
    yield page
    context.close()
