"""Page times on a store of 50 runs: AppTest render times, and "cold" times in a real Chromium.

AppTest: each page renders in a fresh process (so a TensorFlow import shows). Ratio = 2 s budget /
first render time, except that a read-only page (Compare, Inspect, Data, Filters) that imports
TensorFlow scores 0.00x: it must not.

Cold (``--cold``, needs Chromium): a real server on the store; each page is opened by a fresh
browser session (a new context: no cookies, no session state) and timed from navigation to its
first chart drawn (Train, whose default configuration is not stored, to its launch button). The
floor is an empty Streamlit page opened the same way: Streamlit's own JavaScript and handshake.
Warm: in that same session, from a click on the page's link in the sidebar (after visiting
another page) to the same element. Ratios: cold target 1.5 x floor / cold time; warm 0.5 s / warm time.
The first round after the server starts (Python imports of the pages) is shown apart.

    python benchmarks/pages.py            # AppTest
    python benchmarks/pages.py --cold     # AppTest, then Chromium
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, clone_runs, summary, table

from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import RunStore
from tests.serving import free_port, wait_healthy  # noqa: E402

PAGES = ["train", "compare", "inspect", "filters", "data"]
READ_ONLY = {"compare", "inspect", "filters", "data"}
BUDGET_S = 2.0
CHILD = ("import json, sys, time\n"
         "from streamlit.testing.v1 import AppTest\n"
         "page = sys.argv[1]\n"
         "app = AppTest.from_file('streamlit_app.py', default_timeout=120)\n"
         "started = time.perf_counter()\n"
         "app.run()\n"
         "first = time.perf_counter() - started\n"
         "if page != 'train':\n"
         "    app.switch_page(f'pages/{page}.py')\n"
         "    started = time.perf_counter()\n"
         "    app.run()\n"
         "    first = time.perf_counter() - started\n"
         "started = time.perf_counter()\n"
         "app.run()\n"
         "again = time.perf_counter() - started\n"
         "print('RESULT', json.dumps({'seconds': first, 'rerun': again, 'errors': [e.value for e in app.exception],\n"
         "      'tensorflow': 'tensorflow' in sys.modules}))\n")


FLOOR_APP = "import streamlit as st\nst.title('Floor')\n"
READY = {"floor": "h1", "train": 'button:has-text("Train cnn")'}
PLOT_READY = '[data-testid="stPlotlyChart"] .main-svg'
TITLES = {"train": "Train", "compare": "Compare", "inspect": "Inspect", "filters": "Filters", "data": "Data"}
COLD_TARGET = 1.5
WARM_BUDGET_S = 0.5
ROUNDS = 3


def _server(script: Path, env: dict, port: int):

    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
                                "--server.address", "127.0.0.1", "--server.port", str(port),
                                "--browser.gatherUsageStats", "false"], cwd=script.parent, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_healthy(f"http://127.0.0.1:{port}"):
        return process
    process.kill()
    raise SystemExit(f"the server for {script} did not start")


def _open_cold(browser, url: str, ready: str) -> tuple[float, object]:
    import time

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(ready, timeout=120_000)
    return time.perf_counter() - started, context, page


def _warm(page, name: str) -> float:
    """In the same session: visit Data (or Train), then click back to ``name``; seconds to its element."""
    import time

    other = "Data" if name != "data" else "Train"
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text(other, exact=True).click()
    page.wait_for_selector(f'h1:has-text("{other}")', timeout=60_000)
    page.wait_for_timeout(1500)  # let that page finish
    started = time.perf_counter()
    nav.get_by_text(TITLES[name], exact=True).click()
    page.wait_for_selector(f'h1:has-text("{TITLES[name]}")', timeout=60_000)
    page.wait_for_selector(READY.get(name, PLOT_READY), timeout=60_000)
    return time.perf_counter() - started


def cold(store_root: Path) -> None:
    """Chromium timings of every page for a fresh session, beside the empty page's floor."""
    import statistics

    from playwright.sync_api import sync_playwright

    env = {**os.environ, "MNISTLAB_STORE": str(store_root), "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        floor_script = Path(tmp) / "floor.py"
        floor_script.write_text(FLOOR_APP)
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("MNISTLAB_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
        ports = {"floor": free_port(), "app": free_port()}
        servers = [_server(floor_script, env, ports["floor"]), _server(ROOT / "streamlit_app.py", env, ports["app"])]
        try:
            times: dict[str, list[float]] = {name: [] for name in ["floor", *PAGES]}
            warm: dict[str, list[float]] = {name: [] for name in PAGES}
            for round_ in range(ROUNDS + 1):  # round 0: the first sessions after the servers started
                for name in ["floor", *PAGES]:
                    port = ports["floor" if name == "floor" else "app"]
                    path = "" if name in ("floor", "train") else name
                    seconds, context, page = _open_cold(browser, f"http://127.0.0.1:{port}/{path}",
                                                        READY.get(name, PLOT_READY))
                    times[name].append(seconds)
                    if name != "floor" and round_ > 0:
                        warm[name].append(_warm(page, name))
                    context.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=20)
            browser.close()
    floor = statistics.median(times["floor"][1:])
    rows, ratios = [], {}
    for name in ["floor", *PAGES]:
        cold_s = statistics.median(times[name][1:])
        warm_s = statistics.median(warm[name]) if name in warm else None
        rows.append([name, times[name][0], cold_s, cold_s / floor, "-" if warm_s is None else warm_s])
        if name != "floor":
            ratios[f"{name} cold"] = COLD_TARGET * floor / cold_s
            ratios[f"{name} warm"] = WARM_BUDGET_S / warm_s
    print(f"Chromium 1280x800, store of 50 runs; medians of {ROUNDS} fresh sessions per page "
          "(first-after-start shown apart); cold = navigation to the first chart drawn (Train: its launch button)")
    print(table(["page", "first after start s", "cold s", "x floor", "warm s"], rows))
    print(summary("pages cold", ratios))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trained = RunStore(Path(tmp) / "templates")
        templates = [trained.get_or_train(RunConfig(arch=arch, epochs=2, train_size=500, validation="fraction",
                                                    data="sample")).run for arch in ("mlp", "cnn")]
        store = RunStore(Path(tmp) / "runs")
        clone_runs(store, templates, 50)
        env = {**os.environ, "MNISTLAB_STORE": str(store.root), "MNISTLAB_DATA": "sample"}
        rows, ratios = [], {}
        for page in PAGES:
            out = subprocess.run([sys.executable, "-c", CHILD, page], cwd=ROOT, env=env, capture_output=True,
                                 text=True, check=True)
            result = json.loads(out.stdout.split("RESULT", 1)[1])
            bad = page in READ_ONLY and result["tensorflow"]
            ratios[page] = 0.0 if bad or result["errors"] else BUDGET_S / result["seconds"]
            rows.append([page, result["seconds"], result["rerun"], "yes" if result["tensorflow"] else "no",
                         "; ".join(result["errors"])[:60] or "-"])
        print("store: 50 runs (mlp and cnn); first render of the page (after the app's frame), then a rerun")
        print(table(["page", "first render s", "rerun s", "imports TensorFlow", "errors"], rows))
        print(summary("pages", ratios), flush=True)
        if "--cold" in sys.argv[1:]:
            cold(store.root)


if __name__ == "__main__":
    main()
