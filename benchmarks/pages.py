"""Page times: AppTest render times on a store of 50 runs, Compare on a store of 300, and "cold"
times in a real Chromium.

AppTest: each page renders in a fresh process (so a TensorFlow import shows). Ratio = 2 s budget /
first render time, except that a read-only page (Compare, Inspect, Data, Filters) that imports
TensorFlow scores 0.00x: it must not.

Cold (``--cold``, needs Chromium): a real server on the store, started with the options of
``mnistlab serve`` (``mnistlab.cli.served_options``: no source watching, no garbage collection after
every script run), as is the floor's; each page is opened by a fresh
browser session (a new context: no cookies, no session state) and timed from navigation to its
first chart drawn (Train, whose default configuration is not stored, to its launch button). The
floor is an empty Streamlit page opened the same way: Streamlit's own JavaScript and handshake.
Warm: in that same session, from a click on the page's link in the sidebar (after visiting
another page) to the same element. Ratios: cold target 1.5 x floor / cold time; warm 0.5 s / warm time.
The first round after the server starts (Python imports of the pages) is shown apart.

Compare at scale (after the AppTest part): a store of 300 synthetic runs written by
``tests/synthetic.py`` (60 configurations x 5 seeds, one diverged; no training), opened by a link
that selects 12 of them (``?runs=`` their short id prefixes). Each repeat is a fresh process:
the app's frame, then Compare's first render (timed; it must select the 12 runs, raise nothing
and not import TensorFlow); then, once the page's background estimate (the hyperparameter
importance) is drawn, a rerun with nothing changed, 5 selection changes (each to another 12 runs,
set in ``compare_selected`` as ticking rows does) and "Select all shown" (300 runs, informative).
Medians over the repeats (a selection change: the median of each process's 5, then over them).
Ratios: first render 2 s / its time; selection change 1 s / its time. Also shown: the size of
the Plotly JSON of the history panels sent for 12 and for 300 selected runs, and their trace
types (``scattergl`` is WebGL).

Where the cold time goes (printed after the cold table, medians in seconds from navigation):
"chart requested" is when the browser asked for Plotly's JavaScript chunk (it does so when the
page's first chart element arrives and is drawn; on Train, which draws no chart, "-"); "chart JS
in" is when that chunk (some 4.7 MB, which the floor never loads) had arrived; "ready" is the
cold time; "JS chunks" counts the page's JavaScript files (the floor's are Streamlit's own);
"main busy" sums the browser's long tasks (over 50 ms: script evaluation, React, Plotly drawing);
"WebGL" counts the charts drawn with WebGL (scattergl), which a machine without a GPU draws in
software.

    python benchmarks/pages.py                    # AppTest, then Compare at scale
    python benchmarks/pages.py --cold             # the same, then Chromium
    python benchmarks/pages.py --cold-only        # only Chromium (--rounds N: N sessions per page, default 3)
    python benchmarks/pages.py --cold-only --against ../before   # and another checkout, interleaved
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, clone_runs, summary, table

from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import RunStore
from tests.serving import free_port, wait_healthy

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


SCALE_RUNS, SCALE_SELECTED, SCALE_CHANGES, SCALE_REPEATS = 300, 12, 5, 5
SCALE_FIRST_BUDGET_S, SCALE_CHANGE_BUDGET_S = 2.0, 1.0
SCALE_CHILD = (
    "import collections, json, sys, time\n"
    "from streamlit.testing.v1 import AppTest\n"
    "link, changes = json.loads(sys.stdin.read())\n"
    "errors = []\n"
    "def check(app, what, want=None):\n"
    "    errors.extend(f'{what}: {e.value}' for e in app.exception)\n"
    "    got = list(app.session_state['compare_selected']) if 'compare_selected' in app.session_state else []\n"
    "    if want is not None and len(got) != want:\n"
    "        errors.append(f'{what}: {len(got)} runs selected, not {want}')\n"
    "    return got\n"
    "def panels(app):\n"
    "    chart = next((c for c in app.get('plotly_chart') if c.proto.id.endswith('compare_panels')), None)\n"
    "    if chart is None:\n"
    "        return None\n"
    "    types = collections.Counter(t.get('type', 'scatter') for t in json.loads(chart.proto.spec)['data'])\n"
    "    return {'bytes': len(chart.proto.spec), 'types': dict(types)}\n"
    "def timed(app):\n"
    "    started = time.perf_counter()\n"
    "    app.run()\n"
    "    return time.perf_counter() - started\n"
    "app = AppTest.from_file('streamlit_app.py', default_timeout=120)\n"
    "app.query_params['runs'] = ','.join(link)\n"
    "frame = timed(app)\n"
    "app.switch_page('pages/compare.py')\n"
    "first = timed(app)\n"
    "first_ids = check(app, 'first render', len(link))\n"
    "tensorflow = 'tensorflow' in sys.modules\n"
    "chart12 = panels(app)\n"
    "started = time.perf_counter()\n"  # the background estimate: polled as the page's fragment does
    "importance = None\n"
    "while time.perf_counter() - started < 60:\n"
    "    if any(c.proto.id.endswith('compare_importance') for c in app.get('plotly_chart')):\n"
    "        importance = time.perf_counter() - started\n"
    "        break\n"
    "    time.sleep(0.5)\n"
    "    app.run()\n"
    "rerun = sorted(timed(app) for _ in range(3))[1]\n"
    "check(app, 'rerun', len(link))\n"
    "change = []\n"
    "for ids in changes:\n"
    "    app.session_state['compare_selected'] = ids\n"
    "    change.append(timed(app))\n"
    "    if check(app, 'selection change', len(ids)) != ids:\n"
    "        errors.append('selection change: not the runs set')\n"
    "started = time.perf_counter()\n"
    "app.button(key='compare_select_all').click().run()\n"
    "all_s = time.perf_counter() - started\n"
    "n_all = len(check(app, 'select all'))\n"
    "chart_all = panels(app)\n"
    "rerun_all = timed(app)\n"
    "check(app, 'rerun with all selected')\n"
    "print('RESULT', json.dumps({'frame': frame, 'first': first, 'first_selected': len(first_ids),\n"
    "      'importance': importance, 'rerun': rerun, 'change': change, 'all': all_s, 'n_all': n_all,\n"
    "      'rerun_all': rerun_all, 'chart12': chart12, 'chart_all': chart_all, 'errors': errors,\n"
    "      'tensorflow': tensorflow}))\n")


def compare_at_scale() -> None:
    """Compare on a store of 300 synthetic runs, 12 selected by a link: first render, selection changes."""
    import time

    from mnistlab.analysis.comparison import unique_prefixes
    from tests.synthetic import synthetic_configs, write_runs

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        started = time.perf_counter()
        ids = write_runs(store, synthetic_configs(SCALE_RUNS, seeds=5), data="sample", diverged=(7,))
        written_s = time.perf_counter() - started
        # disjoint sets of 12, each spread over the whole store (every 25th run in the order written)
        step = len(ids) // SCALE_SELECTED
        sets = [ids[k::step][:SCALE_SELECTED] for k in range(SCALE_CHANGES + 1)]
        prefixes = unique_prefixes(sets[0], ids)
        job = json.dumps([[prefixes[rid] for rid in sets[0]], sets[1:]])
        env = {**os.environ, "MNISTLAB_STORE": str(store.root), "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
        results = []
        for _ in range(SCALE_REPEATS):
            out = subprocess.run([sys.executable, "-c", SCALE_CHILD], input=job, cwd=ROOT, env=env,
                                 capture_output=True, text=True, check=False)
            if out.returncode or "RESULT" not in out.stdout:
                raise SystemExit(f"the Compare-at-scale child failed:\n{out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.split("RESULT", 1)[1]))

    def med(key):
        values = [r[key] for r in results if r[key] is not None]
        return statistics.median(values) if values else None

    def spread(values):
        return f"{min(values):.2f}-{max(values):.2f}"

    first, change = med("first"), statistics.median(statistics.median(r["change"]) for r in results)
    changes = [c for r in results for c in r["change"]]
    errors = sorted({e for r in results for e in r["errors"]})
    tensorflow = any(r["tensorflow"] for r in results)
    failed = bool(errors) or tensorflow
    importance = med("importance")
    rows = [
        ["app frame (Train page), fresh process", med("frame"), spread([r["frame"] for r in results]), "-", "-"],
        ["Compare first render, 12 selected by link", first, spread([r["first"] for r in results]),
         SCALE_FIRST_BUDGET_S, SCALE_FIRST_BUDGET_S / first],
        ["importance estimate drawn (after first render)", "-" if importance is None else importance,
         "-" if importance is None else spread([r["importance"] for r in results if r["importance"] is not None]),
         "-", "-"],
        ["rerun, nothing changed (12 selected)", med("rerun"), spread([r["rerun"] for r in results]), "-", "-"],
        [f"selection change to another 12 (x{SCALE_CHANGES})", change, spread(changes),
         SCALE_CHANGE_BUDGET_S, SCALE_CHANGE_BUDGET_S / change],
        ["Select all shown (300 selected)", med("all"), spread([r["all"] for r in results]), "-", "-"],
        ["rerun, nothing changed (300 selected)", med("rerun_all"), spread([r["rerun_all"] for r in results]),
         "-", "-"],
    ]
    print(f"\nCompare at scale: a store of {len(ids)} synthetic runs (written in {written_s:.1f} s, not trained), "
          f"{SCALE_SELECTED} selected by a link; medians of {SCALE_REPEATS} fresh processes")
    print(table(["step", "median s", "range s", "budget s", "ratio"], rows))
    sizes = []
    for label, key in ((f"{SCALE_SELECTED} selected", "chart12"), (f"{results[0]['n_all']} selected", "chart_all")):
        chart = results[0][key]
        if chart is None:
            sizes.append([label, "-", "-", "no history panels drawn"])
            continue
        traces = sum(chart["types"].values())
        webgl = chart["types"].get("scattergl", 0)
        sizes.append([label, f"{chart['bytes']:,}", traces,
                      ", ".join(f"{n} {t}" for t, n in sorted(chart["types"].items())) + f" (WebGL {webgl}/{traces})"])
    print(table(["history panels", "Plotly JSON bytes", "traces", "trace types"], sizes))
    print(f"first render: {results[0]['first_selected']} runs selected by the link; TensorFlow imported: "
          f"{'yes' if tensorflow else 'no'}; errors: {'; '.join(errors)[:300] or 'none'}")
    print(summary("compare at scale", {"first render": 0.0 if failed else SCALE_FIRST_BUDGET_S / first,
                                       "selection change": 0.0 if failed else SCALE_CHANGE_BUDGET_S / change}),
          flush=True)


FLOOR_APP = "import streamlit as st\nst.title('Floor')\n"
READY = {"floor": "h1", "train": 'button:has-text("Train cnn")'}
PLOT_READY = '[data-testid="stPlotlyChart"] .main-svg'
TITLES = {"train": "Train", "compare": "Compare", "inspect": "Inspect", "filters": "Filters", "data": "Data"}
COLD_TARGET = 1.5
WARM_BUDGET_S = 0.5
ROUNDS = 3


def _server(script: Path, env: dict, port: int):

    from mnistlab.cli import served_options

    options = [f"--{name}={str(value).lower() if isinstance(value, bool) else value}"
               for name, value in served_options().items()]  # what `mnistlab serve` runs, floor included
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), *options,
                                "--server.address", "127.0.0.1", "--server.port", str(port)], cwd=script.parent,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_healthy(f"http://127.0.0.1:{port}"):
        return process
    process.kill()
    raise SystemExit(f"the server for {script} did not start")


#: Collects the browser's long tasks from the start of the page (script evaluation, React, Plotly drawing).
LONG_TASKS = """
window.__longTasks = [];
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
    .observe({type: "longtask", buffered: true});
} catch (e) {}
"""
#: What the page loaded and drew, read in the page once its element is there.
LOADED = """() => {
  const scripts = performance.getEntriesByType("resource").filter(e => e.name.split("?")[0].endsWith(".js"));
  const plotly = scripts.find(e => /\\/PlotlyChart\\.[^/]*\\.js$/.test(e.name));
  return {now: performance.now() / 1000, scripts: scripts.length,
          plotlyStart: plotly ? plotly.startTime / 1000 : null, plotlyEnd: plotly ? plotly.responseEnd / 1000 : null,
          busy: (window.__longTasks || []).reduce((a, b) => a + b, 0) / 1000,
          webgl: document.querySelectorAll('[data-testid="stPlotlyChart"] .gl-container canvas').length};
}"""


def _open_cold(browser, url: str, ready: str) -> tuple[float, object, object, dict]:
    import time

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(LONG_TASKS)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(ready, timeout=120_000)
    seconds = time.perf_counter() - started
    return seconds, context, page, page.evaluate(LOADED)


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


def cold(store_root: Path, rounds: int = ROUNDS, against: Path | None = None) -> None:
    """Chromium timings of every page for a fresh session, beside the empty page's floor (opened before
    each page, so it sees the same load). ``against``: another checkout of the app (say, before a
    change), served too and timed in the same rounds, interleaved, in turns first and second."""
    import statistics

    from playwright.sync_api import sync_playwright

    apps = {"this": ROOT, **({"other": Path(against).resolve()} if against else {})}
    env = {**os.environ, "MNISTLAB_STORE": str(store_root), "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
    times: dict[tuple[str, str], list[float]] = {}
    loaded: dict[tuple[str, str], list[dict]] = {}
    warm: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        floor_script = Path(tmp) / "floor.py"
        floor_script.write_text(FLOOR_APP)
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("MNISTLAB_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"])
        ports = {"floor": free_port(), **{app: free_port() for app in apps}}
        servers = [_server(floor_script, env, ports["floor"])]
        try:
            servers += [_server(folder / "streamlit_app.py", env, ports[app]) for app, folder in apps.items()]
            for round_ in range(rounds + 1):  # round 0: the first sessions after the servers started
                for name in PAGES:
                    order = list(apps) if round_ % 2 == 0 else list(reversed(apps))
                    for app in ["floor", *order]:
                        key = ("floor", "floor") if app == "floor" else (app, name)
                        path = "" if app == "floor" or name == "train" else name
                        ready = READY["floor"] if app == "floor" else READY.get(name, PLOT_READY)
                        seconds, context, page, seen = _open_cold(browser, f"http://127.0.0.1:{ports[app]}/{path}",
                                                                  ready)
                        if round_ == 0 and app == "floor" and name != PAGES[0]:
                            context.close()
                            continue
                        times.setdefault(key, []).append(seconds)
                        if round_ > 0:
                            loaded.setdefault(key, []).append(seen)
                            if app != "floor":
                                warm.setdefault(key, []).append(_warm(page, name))
                        context.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=20)
            browser.close()

    floor = statistics.median(times["floor", "floor"][1:])
    ratios = {}
    print(f"Chromium 1280x800, store of 50 runs; medians of {rounds} fresh sessions per page (the floor: of "
          f"{rounds * len(PAGES)}, one before each page); first-after-start shown apart; cold = navigation to the "
          "first chart drawn (Train: its launch button)")
    for app, folder in apps.items():
        rows, parts = [], []
        for key in [("floor", "floor"), *[(app, name) for name in PAGES]]:
            name = key[1]
            cold_s = statistics.median(times[key][1:])
            warm_s = statistics.median(warm[key]) if key in warm else None
            rows.append([name, times[key][0], cold_s, cold_s / floor, "-" if warm_s is None else warm_s])
            if name != "floor" and app == "this":
                ratios[f"{name} cold"] = COLD_TARGET * floor / cold_s
                ratios[f"{name} warm"] = WARM_BUDGET_S / warm_s

            def med(field, seen=loaded[key]):
                values = [s[field] for s in seen if s[field] is not None]
                return statistics.median(values) if values else "-"

            parts.append([name, med("plotlyStart"), med("plotlyEnd"), med("now"), round(med("scripts")), med("busy"),
                          round(med("webgl"))])
        if against:
            print(f"\n{'this checkout' if app == 'this' else 'against'}: {folder}")
        print(table(["page", "first after start s", "cold s", "x floor", "warm s"], rows))
        print("Where the cold time goes (medians, seconds from navigation; see the docstring)")
        print(table(["page", "chart requested", "chart JS in", "ready", "JS chunks", "main busy", "WebGL"], parts))
    if against:
        print("\nThis checkout against the other, page by page (cold: median of the per-round ratios)")
        print(table(["page", "cold s this / other", "warm s this / other"], [
            [name, statistics.median(a / b for a, b in zip(times["this", name][1:], times["other", name][1:])),
             statistics.median(warm["this", name]) / statistics.median(warm["other", name])] for name in PAGES]))
    print(summary("pages cold", ratios))


def _store_of_50(tmp: str) -> RunStore:
    trained = RunStore(Path(tmp) / "templates")
    templates = [trained.get_or_train(RunConfig(arch=arch, epochs=2, train_size=500, validation="fraction",
                                                data="sample")).run for arch in ("mlp", "cnn")]
    store = RunStore(Path(tmp) / "runs")
    clone_runs(store, templates, 50)
    return store


def main() -> None:
    args = sys.argv[1:]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else ROUNDS
    against = Path(args[args.index("--against") + 1]) if "--against" in args else None
    with tempfile.TemporaryDirectory() as tmp:
        store = _store_of_50(tmp)
        if "--cold-only" in args:
            cold(store.root, rounds, against)
            return
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
        compare_at_scale()
        if "--cold" in args:
            cold(store.root, rounds, against)


if __name__ == "__main__":
    main()
