"""Screenshots of every page at a desktop and a phone size, from a real server in headless Chromium.

    python scripts/screenshots.py --store /tmp/store --out docs/screenshots/first-hour --prefix after
    python scripts/screenshots.py --app /tmp/old-checkout --store /tmp/store --out ... --prefix before

Starts ``python -m streamlit run streamlit_app.py`` in ``--app`` (default: this checkout) on a
free port with ``MNISTLAB_STORE=--store``, opens each page in a fresh browser context and saves
what the first screen shows (``<prefix>-<page>-<width>x<height>.png``), and with ``--full`` the
whole page too. Chromium is Debian's (/usr/bin/chromium, or $MNISTLAB_CHROMIUM).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"train": "", "compare": "compare", "inspect": "inspect", "filters": "filters", "data": "data"}
SIZES = [(1280, 800), (390, 844)]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(app: Path, store: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "MNISTLAB_STORE": str(store), "MNISTLAB_DATA": os.environ.get("MNISTLAB_DATA", "sample"),
           "MNISTLAB_OFFLINE": "1", "PYTHONPATH": str(app)}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless",
                                "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                                "--browser.gatherUsageStats", "false"], cwd=app, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the Streamlit server did not start")


def settle(page, timeout: float = 60) -> None:
    """Wait until the script has run and the charts are drawn."""
    page.wait_for_selector("h1", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        running = page.locator('[data-testid="stStatusWidgetRunningIcon"]').count()
        quiet = 0 if running else quiet + 1
        time.sleep(0.4)
    time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=ROOT)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prefix", default="after")
    parser.add_argument("--pages", nargs="*", default=list(PAGES))
    parser.add_argument("--full", action="store_true", help="also the whole page at the desktop size")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(args.app.resolve(), args.store.resolve(), port)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=os.environ.get("MNISTLAB_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
            for name in args.pages:
                for width, height in SIZES:
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    page.goto(f"http://127.0.0.1:{port}/{PAGES[name]}")
                    settle(page)
                    path = args.out / f"{args.prefix}-{name}-{width}x{height}.png"
                    page.screenshot(path=str(path))
                    if args.full and width > 1000:
                        page.screenshot(path=str(args.out / f"{args.prefix}-{name}-full.png"), full_page=True)
                    print(path)
                    context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
