"""Faults: damaged runs, hostile bundles and hostile links never take mnistlab down.

Trains three tiny runs on the shipped sample into a scratch store (mlp and cnn on digits, cnn
on parity), then probes every face of mnistlab with what a broken disk or a stranger can send:

- library: every case of the corruption matrix of ``tests/test_corruption.py`` (each run file
  missing, truncated, garbage, of the wrong type or shape, copied from another run; bad array
  values; deeply nested JSON; ...) in a fresh copy of the store: list it, open every run and
  every array; plus faults beyond the files (the store path a file, unreadable folders);
- CLI (subprocesses): ``runs``, ``runs --json``, ``doctor`` and ``show`` of every damaged and
  healthy run, one store holding all the damaged runs side by side;
- pages (AppTest): every page of the app's navigation beside the damaged runs; Inspect and
  Filters with each run whose arrays are bad picked; links to runs broken in a file; Train on a
  broken run's configuration; a store path that is a file;
- bundles: every matrix case packed as a bundle, malformed zips of each kind, zip bombs, hostile
  entry names and JSON fields, imported through the library (and the zip-level ones through the
  CLI);
- links: Markdown image/link, ``<img>``, ``<script>``, ``:red[...]``, ``$$...$$`` and 5,000-character
  values through every query parameter of Compare, Inspect and Filters in AppTest; and, when
  /usr/bin/chromium exists, one hostile link per page in headless Chromium against a real server.

Counts: cases (probes run); crashes (an uncaught exception in the library, an exception element
in AppTest, a traceback, hang or unexpected exit status from the CLI); runs lost (a healthy run
that no longer loads or changed, or a store changed by a refused bundle); foreign requests (an
unescaped payload in any element AppTest rendered, or a request from Chromium to a host other
than 127.0.0.1). The table also counts "missed": damage nobody noticed (a damaged run listed
and opened as healthy, a hostile bundle imported, a broken run not named on a page); "skipped"
counts probes not run (time budget spent) or not conclusive (this script could not read a page).
Each problem is listed above the table. No probe starts after BUDGET_S seconds, so it stops by
itself (about 3 minutes on the project's 2-core machine).

    python benchmarks/faults.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

from common import ROOT, table

# This folder holds a pages.py of its own: the app's ``pages`` package must win for AppTest.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

os.environ["MNISTLAB_DATA"] = "sample"
os.environ["MNISTLAB_OFFLINE"] = "1"
for name in ("MNISTLAB_MNIST", "MNISTLAB_READ_ONLY", "MNISTLAB_MAX_EPOCHS", "MNISTLAB_MAX_TRAIN_SIZE"):
    os.environ.pop(name, None)

from mnistlab import RunStore
from mnistlab.errors import BrokenRun, BundleError, MnistlabError, StoreError
from mnistlab.runs import bundles
from tests.app.test_untrusted import LINK_PARAMS, LONG, PAYLOADS, RAW_HTML, rendered_sources
from tests.conftest import tiny_config
from tests.serving import free_port, wait_healthy  # noqa: E402
from tests.test_corruption import CASES, DONOR, VICTIM, clone_run, copy_runs, damage_run
from tests.test_text import live_markup

BUDGET_S = 420.0  # no probe starts after this many seconds (a probe in flight finishes)
CLI_TIMEOUT_S = 60
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
OLD = "2000-01-01T00:00:00.000+00:00"  # damaged copies are the oldest runs: never a page's default
PAGES = re.findall(r'st\.Page\("(pages/[^"]+\.py)"', (ROOT / "streamlit_app.py").read_text(encoding="utf-8"))
SHORT = [p for p in PAYLOADS if p is not LONG]
FAKE = "0123456789abcdef"
#: A payload left live: the syntax of PAYLOADS as only a payload writes it (the pages' own Markdown,
#: e.g. ":red[Delete ...]", is not counted).
LIVE = ("](http", "<img", "<script", ":red[boom", "$$", "evil.example", "http://evil", ":material/home")

START = time.monotonic()
PROBLEMS: list[str] = []


# -- counting ----------------------------------------------------------------------------
class Surface:
    """The tallies of one face of mnistlab."""

    def __init__(self, name: str):
        self.name = name
        self.cases = self.crashes = self.lost = self.foreign = self.missed = self.skipped = self.harness = 0
        self.seconds = 0.0


class Probe:
    """One case: what it found is reported through these methods; an exception it lets
    through is a crash of what it probed."""

    def __init__(self, surface: Surface, what: str):
        self.surface, self.what = surface, what
        self.crashed = False

    def _note(self, kind: str, message: str) -> None:
        PROBLEMS.append(f"[{self.surface.name}] {kind}: {self.what}: {' '.join(str(message).split())[:300]}")

    def crash(self, message: str) -> None:
        if not self.crashed:
            self.crashed = True
            self.surface.crashes += 1
        self._note("crash", message)

    def lose(self, message: str, count: int = 1) -> None:
        self.surface.lost += count
        self._note("run lost", message)

    def foreign(self, message: str, count: int = 1) -> None:
        self.surface.foreign += count
        self._note("foreign", message)

    def miss(self, message: str) -> None:
        self.surface.missed += 1
        self._note("missed", message)


def probe(surface: Surface, what: str, check) -> None:
    """Run ``check(probe)`` as one case, unless the time budget is spent."""
    if time.monotonic() - START > BUDGET_S:
        surface.skipped += 1
        return
    surface.cases += 1
    p = Probe(surface, what)
    try:
        check(p)
    except Exception as exc:  # noqa: BLE001 - what a probe lets through is a crash...
        last = traceback.extract_tb(exc.__traceback__)[-1].filename
        if "streamlit/testing" in last and "timed out" not in str(exc):  # ...unless this script misread a page
            surface.harness += 1
            p._note("harness", f"{type(exc).__name__}: {exc}")
        else:
            p.crash(f"uncaught {type(exc).__name__}: {exc} ({_where(exc)})")


def _where(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/mnistlab/" in f.filename or "/pages/" in f.filename]
    frame = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


# -- runs --------------------------------------------------------------------------------
def train_runs(root: Path) -> dict:
    store = RunStore(root)
    configs = {"mlp": tiny_config(arch="mlp", epochs=2), "cnn": tiny_config(arch="cnn", epochs=2),
               "cnn_parity": tiny_config(arch="cnn", task="parity", epochs=1)}
    return {name: store.get_or_train(config).run for name, config in configs.items()}


def fingerprint(run) -> tuple:
    """What must not change about a healthy run."""
    arrays = [run.predictions().probabilities, *run.weights()]
    epochs = run.epochs() if hasattr(run, "epochs") else None
    if epochs is not None:
        arrays += [epochs.classes, epochs.confidence]
    return (json.dumps(run.metrics, sort_keys=True), json.dumps(run.history), tuple(a.tobytes() for a in arrays))


def check_healthy(p: Probe, root: Path, runs: dict, prints: dict, names) -> None:
    store = RunStore(root)
    for name in names:
        try:
            if fingerprint(store.load(runs[name].run_id)) != prints[name]:
                p.lose(f"healthy run {name} changed in {root.name}")
        except Exception as exc:  # noqa: BLE001
            p.lose(f"healthy run {name} no longer loads in {root.parent.name}: {type(exc).__name__}: {exc}")


def open_arrays(run) -> None:
    if run.is_finished:
        run.predictions()
        run.weights()
        if hasattr(run, "epochs"):
            run.epochs()


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".tmp" not in p.relative_to(root).parts}


# -- library -------------------------------------------------------------------------------
def library_phase(s: Surface, scratch: Path, runs: dict, prints: dict) -> set[str]:
    """Every matrix case in its own copy of the store. Returns the ids of the cases whose listing raised."""
    poisoners: set[str] = set()
    victim = runs[VICTIM].run_id
    healthy = [name for name in runs if name != VICTIM]
    for case in CASES:
        def check(p: Probe, case=case) -> None:
            root = copy_runs(runs, scratch / "library" / case.id)
            damage_run(root / victim, case, runs[DONOR].path)
            try:
                listing = RunStore(root).list_runs()
            except Exception as exc:  # noqa: BLE001 - listing never raises for a damaged run
                poisoners.add(case.id)
                p.crash(f"list_runs raised {type(exc).__name__}: {str(exc)[:120]} ({_where(exc)})")
                return
            noticed = victim in {b.run_id for b in listing.broken}
            for run in listing.runs:
                try:
                    open_arrays(run)
                except BrokenRun as exc:
                    if run.run_id == victim:
                        noticed = True
                    else:
                        p.lose(f"healthy run {run.run_id} does not open: {exc.reason}")
            if case.stage != "fine" and not noticed:
                p.miss(f"listed and opened as healthy ({case.match!r} expected)")
            check_healthy(p, root, runs, prints, healthy)
        probe(s, case.id, check)

    def store_is_a_file(p: Probe) -> None:
        path = scratch / "library" / "a-file"
        path.write_text("not a folder")
        try:
            RunStore(path).list_runs()
            p.miss("a store path that is a file listed as an empty store")
        except StoreError as exc:
            if str(path) not in str(exc):
                p.miss("the StoreError does not name the path")

    def unreadable(p: Probe, fault: str) -> None:
        root = copy_runs(runs, scratch / "library" / f"fault-{fault}")
        folder = root / victim
        if fault == "config.json-a-folder":
            (folder / "config.json").unlink()
            (folder / "config.json").mkdir()
        elif fault == "predictions.npz-a-device":
            (folder / "predictions.npz").unlink()
            (folder / "predictions.npz").symlink_to("/dev/zero")
        elif fault == "weights.npz-a-dangling-link":
            (folder / "weights.npz").unlink()
            (folder / "weights.npz").symlink_to(folder / "nowhere.npz")
        elif fault == "run-folder-a-link-loop":
            shutil.rmtree(folder)
            folder.symlink_to(folder)
        elif fault == "store-marker-deeply-nested":
            (root / "store.json").write_text("[" * 100_000)
        listing = RunStore(root).list_runs()
        if fault.startswith(("run-folder", "store-marker")):
            if fault.startswith("store-marker") and len(listing.runs) != 3:
                p.lose("runs missing from the listing")
        elif victim not in {b.run_id for b in listing.broken}:
            p.miss("not listed as broken")
        check_healthy(p, root, runs, prints, healthy)

    probe(s, "store path is a file", store_is_a_file)
    for fault in ("config.json-a-folder", "predictions.npz-a-device", "weights.npz-a-dangling-link",
                  "run-folder-a-link-loop", "store-marker-deeply-nested"):
        probe(s, fault, lambda p, fault=fault: unreadable(p, fault))
    return poisoners


# -- CLI -----------------------------------------------------------------------------------
def run_cli(args: list[str]) -> subprocess.CompletedProcess | str:
    try:
        return subprocess.run([sys.executable, "-m", "mnistlab", *args], check=False, cwd=ROOT, capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S, env={**os.environ, "COLUMNS": "200"})
    except subprocess.TimeoutExpired:
        return f"hung for more than {CLI_TIMEOUT_S} s"


def check_cli(p: Probe, result, expect: set[int]) -> subprocess.CompletedProcess | None:
    if isinstance(result, str):
        p.crash(result)
        return None
    if "Traceback" in result.stderr:
        p.crash("a traceback: " + result.stderr.strip().splitlines()[-1])
    elif result.returncode == 0 and 0 not in expect:
        p.miss("exit status 0: the damage went unnoticed")
    elif result.returncode not in expect:
        p.crash(f"exit status {result.returncode} (expected {sorted(expect)}): {result.stderr.strip()[:200]}")
    elif result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("mnistlab: error: ") or \
                re.match(r"mnistlab: error: unexpected [A-Z]\w*: ", lines[0]):  # the CLI's catch-all for bugs
            p.crash(f"not one error line: {result.stderr.strip()[:200]}")
    return result


def cli_many(calls: list[list[str]]) -> list:
    with ThreadPoolExecutor(max_workers=3) as pool:  # each call is a process start: overlap them
        return list(pool.map(run_cli, calls))


def cli_phase(s: Surface, shared: dict, poisoned: dict, runs: dict) -> None:
    root = shared["root"]
    listed = {cid: rid for cid, rid in shared["clones"].items() if shared["cases"][cid].stage == "list"}
    store = ["--store", str(root)]
    if time.monotonic() - START > BUDGET_S:
        s.skipped += 1
        return
    calls = [["runs", *store], ["runs", "--json", *store], ["doctor", *store], ["doctor", "--json", *store]]
    calls += [["show", rid, *store] for rid in shared["clones"].values()]
    calls += [["show", run.run_id, *store] for run in runs.values()]
    results = cli_many(calls)

    def runs_text(p: Probe) -> None:
        result = check_cli(p, results[0], {0})
        if result is not None and result.returncode == 0:
            for cid, rid in listed.items():
                if not any(ln.startswith(rid) and "broken: " in ln for ln in result.stdout.splitlines()):
                    p.miss(f"{cid} ({rid}) is not listed as broken")

    def runs_json(p: Probe) -> None:
        result = check_cli(p, results[1], {0})
        if result is not None and result.returncode == 0:
            broken = {b["run_id"] for b in json.loads(result.stdout)["broken"]}
            for cid, rid in listed.items():
                if rid not in broken:
                    p.miss(f"{cid} ({rid}) is not listed as broken")

    probe(s, "runs", runs_text)
    probe(s, "runs --json", runs_json)
    probe(s, "doctor", lambda p: check_cli(p, results[2], {0}))
    probe(s, "doctor --json", lambda p: check_cli(p, results[3], {0}))
    for (cid, rid), result in zip(shared["clones"].items(), results[4:]):
        case = shared["cases"][cid]

        def show(p: Probe, result=result, case=case) -> None:
            checked = check_cli(p, result, {1} if case.stage == "list" else {0})
            if checked is not None and checked.returncode == 1 and case.file not in checked.stderr:
                p.miss("the error line does not name the file")
        probe(s, f"show {cid}", show)
    for run, result in zip(runs.values(), results[4 + len(shared["clones"]):]):
        probe(s, f"show healthy {run.label}", lambda p, result=result: check_cli(p, result, {0}))
    for cid, root in poisoned.items():  # a case that broke the listing in the library: a store of its own
        results = cli_many([["runs", "--store", str(root)], ["show", runs[DONOR].run_id, "--store", str(root)]])
        probe(s, f"runs beside {cid}", lambda p, r=results[0]: check_cli(p, r, {0}))
        probe(s, f"show a healthy run beside {cid}", lambda p, r=results[1]: check_cli(p, r, {0}))


# -- pages (AppTest) ---------------------------------------------------------------------
def open_page(page: str, params: dict | None = None):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    if params:
        app.query_params.update(params)
    run(app)
    if page != PAGES[0]:
        run(app.switch_page(page))
    return app


def run(app):
    """``app.run()`` quietly (Streamlit prints the tracebacks it catches; they are counted), with
    exceptions shown in full (the app's own config redacts them) so that each crash can be named."""
    from streamlit import config

    config.set_option("client.showErrorDetails", "full")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return app.run()


class Session:
    """One AppTest session that switches pages: every page after the first costs one script run."""

    def __init__(self):
        self.app = None

    def open(self, page: str):
        from streamlit.testing.v1 import AppTest

        if self.app is None:
            self.app = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
            run(self.app)
            if page == PAGES[0]:
                return self.app
        run(self.app.switch_page(page))
        return self.app


def shown(elements) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", str(e.value)).replace("\u200b", "") for e in elements]


def check_app(p: Probe, app) -> None:
    """Exceptions are crashes; payloads left live in what the page renders are foreign requests."""
    for exc in app.exception:
        frames = [m for m in (re.match(r'File "([^"]+)", line (\d+), in (\S+)', ln) for ln in exc.stack_trace)
                  if m and m.group(1).startswith(str(ROOT))]
        where = f"{Path(frames[-1].group(1)).relative_to(ROOT)}:{frames[-1].group(2)} in {frames[-1].group(3)}" \
            if frames else "?"
        p.crash(f"{exc.proto.type}: {exc.value[:160]} (at {where})")
    for kind, field, text in rendered_sources(app):
        if kind == "plotly_chart":
            hits = [html for html in RAW_HTML if html in text]
        elif kind == "code" and field.endswith("code_text"):
            continue  # a code block shows its text as it is
        else:
            live = live_markup(text)
            hits = [syntax for syntax in LIVE if syntax in live]
        if hits:
            p.foreign(f"{kind}{field}: live {hits} in {text[:80]!r}", len(hits))


def pages_phase(s: Surface, shared: dict, poisoned_root: Path | None, scratch: Path, runs: dict) -> None:
    root = shared["root"]
    os.environ["MNISTLAB_STORE"] = str(root)
    clones, cases = shared["clones"], shared["cases"]
    listed = {cid: rid for cid, rid in clones.items() if cases[cid].stage == "list"}
    for page in PAGES:
        def render(p: Probe, page=page) -> None:
            app = open_page(page)
            check_app(p, app)
            if page in ("pages/compare.py", "pages/inspect.py"):
                warnings = " ".join(shown(app.warning))
                for cid, rid in listed.items():
                    if rid not in warnings:
                        p.miss(f"{cid} ({rid}) is not named")
        probe(s, f"{page} beside {len(listed)} broken runs", render)

    readable = {r.run_id for r in RunStore(root).list_runs().runs if r.is_finished}
    for cid, rid in clones.items():  # every damaged run a page offers, picked: Inspect reads the
        case = cases[cid]            # predictions, Filters the weights
        if rid not in readable:
            continue
        page, key = ("pages/filters.py", "filters_run") if case.file == "weights.npz" else \
            ("pages/inspect.py", "inspect_run")

        def pick(p: Probe, page=page, key=key, rid=rid, case=case) -> None:
            app = open_page(page)
            run(app.selectbox(key=key).set_value(rid))
            check_app(p, app)
            if case.stage == "open" and case.file != "epochs.npz" and not any(rid in e for e in shown(app.error)):
                p.miss(f"no error names {rid} on {page}")
        probe(s, f"{cid} picked on {page}", pick)

    firsts = {}
    for cid in listed:
        firsts.setdefault(cases[cid].file, cid)
    firsts = list(firsts.values())
    for a, b in zip(firsts[::2], firsts[1::2] + firsts[:1]):  # links to runs broken in each file, two a link
        refs = [(listed[cid], runs[VICTIM].config.replace(seed=shared["seeds"][cid])) for cid in (a, b)]

        def link(p: Probe, refs=refs) -> None:
            from mnistlab.views import share

            view = share.InspectView(run=share.RunRef(*refs[0]), second=share.RunRef(*refs[1]))
            app = open_page("pages/inspect.py", view.to_params())
            check_app(p, app)
            for rid, _ in refs:
                if not any(rid in w for w in shown(app.warning) + shown(app.error)):
                    p.miss(f"a link to {rid} does not name it as broken")
        probe(s, f"link to {a} and {b} on Inspect", link)
    for cid in firsts[1::3]:  # Train on the configuration of a broken run
        config = runs[VICTIM].config.replace(seed=shared["seeds"][cid])

        def train(p: Probe, config=config) -> None:
            app = open_page(PAGES[0])
            app.selectbox(key="train_arch").set_value(config.arch)
            app.number_input(key="train_epochs").set_value(config.epochs)
            app.selectbox(key="train_validation").set_value(config.validation)
            app.toggle(key="train_limit").set_value(True)
            run(app.number_input(key="train_seed").set_value(config.seed))
            run(app.number_input(key="train_size").set_value(config.train_size))
            check_app(p, app)
            if not any("broken" in e for e in shown(app.error)):
                p.miss("Train does not say the configuration's stored run is broken")
        if PAGES[0] == "pages/train.py":
            probe(s, f"{cid}'s configuration on Train", train)

    if poisoned_root is not None:
        os.environ["MNISTLAB_STORE"] = str(poisoned_root)
        session = Session()
        for page in PAGES:
            probe(s, f"{page} beside deeply nested JSON", lambda p, page=page: check_app(p, session.open(page)))
    path = scratch / "pages-store-is-a-file"
    path.write_text("not a folder")
    os.environ["MNISTLAB_STORE"] = str(path)
    session = Session()
    for page in PAGES:
        def not_a_folder(p: Probe, page=page) -> None:
            app = session.open(page)
            check_app(p, app)
            if not any(str(path) in e for e in shown(app.error)):
                p.miss("no error names the store path")
        probe(s, f"{page} with the store path a file", not_a_folder)
    if path.read_text() != "not a folder":
        s.lost += 1
        PROBLEMS.append("[pages] run lost: the file at the store path was changed")
    os.environ["MNISTLAB_STORE"] = str(root)


# -- links -------------------------------------------------------------------------------
def hostile_links() -> list[tuple[str, dict]]:
    """Per page: every parameter carrying every short payload (rotated, so each starts with another:
    pages quote the start of a bad value), then every parameter 5,000 characters long."""
    links = []
    for page, params in LINK_PARAMS.items():
        names = list(params)
        joined = {name: params[name](" ".join(SHORT[i % len(SHORT):] + SHORT[:i % len(SHORT)]))
                  for i, name in enumerate(names)}
        links.append((page, joined))
        links.append((page, {name: params[name](LONG) for name in names}))
    return links


def links_phase(s: Surface, root: Path) -> None:
    os.environ["MNISTLAB_STORE"] = str(root)
    for page, params in hostile_links():
        label = next(iter(params.values()))[:24]
        probe(s, f"{page} ?{label!r}…", lambda p, page=page, params=params: check_app(p, open_page(page, params)))


def browser_phase(s: Surface, root: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        PROBLEMS.append("[chromium] skipped: playwright is not installed")
        return
    port = free_port()
    env = {**os.environ, "MNISTLAB_STORE": str(root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(base):
            PROBLEMS.append("[chromium] skipped: the Streamlit server did not become healthy in 60 s")
            return
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                _control(browser)
                for page_file in PAGES:
                    name = Path(page_file).stem
                    params = {key: make(" ".join(SHORT)) for key, make in LINK_PARAMS.get(page_file, {}).items()}
                    shows = bool(params)  # Compare, Inspect and Filters name a link's bad values on the page
                    params = params or {"q": " ".join(SHORT)}
                    path = ("" if page_file == PAGES[0] else name) + "?" + urlencode(params, quote_via=quote)
                    probe(s, f"{name} in Chromium",
                          lambda p, path=path, shows=shows: _browse(p, browser, base, path, shows))
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)


def _control(browser) -> None:
    """The listener must see a request to another host when a page does make one."""
    context = browser.new_context()
    seen: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda request: seen.append(request.url))
        page.set_content('<img src="http://evil.example/control.png">')
        time.sleep(0.5)
    finally:
        context.close()
    if not any("evil.example" in url for url in seen):
        PROBLEMS.append("[chromium] harness: the request listener missed a known foreign request")


def _browse(p: Probe, browser, base: str, path: str, shows: bool) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    requests: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/{path}", timeout=60_000)
        page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=60_000)
        deadline = time.monotonic() + 40
        time.sleep(0.5)
        while time.monotonic() < deadline:  # until the script has finished (no running indicator)
            if page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() == 0:
                time.sleep(0.5)
                if page.locator('[data-testid="stStatusWidgetRunningIcon"]').count() == 0:
                    break
            time.sleep(0.3)
        time.sleep(1.0)  # what loads lazily (images, KaTeX, charts) asks now
        if page.locator('[data-testid="stException"]').count():
            p.crash("an exception box: " + page.locator('[data-testid="stException"]').first.inner_text()[:200])
        elif shows and "evil.example" not in page.locator('[data-testid="stMain"]').inner_text():
            p.surface.harness += 1
            p._note("harness", "the link's values are not on the page (did the link reach it?)")
    finally:
        context.close()
    if not any(urlparse(url).hostname == "127.0.0.1" for url in requests):
        p.surface.harness += 1
        p._note("harness", "the request listener saw no request at all")
    for url in requests:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname != "127.0.0.1":
            p.foreign(f"a request to {url[:120]}")


# -- bundles -------------------------------------------------------------------------------
def pack(folder: Path) -> bytes:
    """A bundle of one run folder as it is (damaged or not)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(bundles.MANIFEST, json.dumps({"format": 3, "runs": [folder.name]}))
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.name}")
    return out.getvalue()


def rebuild(payload: bytes, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            changed = change(info.filename, src.read(info))
            if changed is not None:
                dst.writestr(changed[0], changed[1])
    return out.getvalue()


def _flip(payload: bytes, signatures, value=None) -> bytes:
    data = bytearray(payload)
    for signature, offset in signatures:
        start = 0
        while (start := data.find(signature, start)) != -1:
            if value is None:
                data[start + offset] |= 0x1
            else:
                data[start + offset] = value
            start += 4
    return bytes(data)


def _bad_crc(payload: bytes) -> bytes:
    data = bytearray(payload)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for info in archive.infolist():
            offset = info.header_offset
            start = offset + 30 + int.from_bytes(data[offset + 26:offset + 28], "little") + \
                int.from_bytes(data[offset + 28:offset + 30], "little")
            if info.compress_size > 2:
                data[start + info.compress_size // 2] ^= 0xFF
    return bytes(data)


def zip_bundles(good: bytes, ids: list[str]) -> dict[str, bytes]:
    """Malformed and hostile zips that are not damaged runs: every one must be refused."""
    first = ids[0]
    out: dict[str, bytes] = {}
    for evil in ("../escape.txt", "/etc/cron.d/evil", f"{first}/../../x.json", f"{first}/run.sh",
                 "C:\\windows\\evil.dll", f"{first}/config.json/../../../x"):
        buffer = io.BytesIO(good)
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr(evil, b"owned")
        out[f"entry {evil!r}"] = buffer.getvalue()
    out["not a zip"] = b"this is not a zip"
    out["empty file"] = b""
    out["manifest only"] = rebuild(good, lambda n, d: (n, d) if n == bundles.MANIFEST else None)
    out["half"] = good[: len(good) // 2]
    out["tail cut"] = good[:-10]
    out["bad CRC"] = _bad_crc(good)
    out["encrypted flag"] = _flip(good, ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)))
    out["unknown compression"] = _flip(good, ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)), value=99)
    out["empty directory record"] = b"PK\x05\x06" + b"\x00" * 18
    flood = io.BytesIO()  # 6 MB of JSON in a few KB: stopped by the size its header declares
    with zipfile.ZipFile(flood, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{first}/history.json", b"[" + b"0," * (3 * 1024 * 1024) + b"0]")
    out["zip bomb (declared)"] = flood.getvalue()
    liar = io.BytesIO()  # 2 MB declared as 100 bytes: stopped while unpacking
    with zipfile.ZipFile(liar, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{first}/metrics.json", b" " * (2 * 1024 * 1024))
    out["zip bomb (lying header)"] = liar.getvalue().replace((2 * 1024 * 1024).to_bytes(4, "little"),
                                                             (100).to_bytes(4, "little"))
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(bundles.MAX_RUNS + 1):
            archive.writestr(f"{i:016x}/config.json", b"{}")
    out[f"{bundles.MAX_RUNS + 1} runs"] = many.getvalue()
    twice = io.BytesIO(good)
    with zipfile.ZipFile(twice, "a") as archive:
        archive.writestr(f"{first}/metrics.json", b"{}")
    out["an entry twice"] = twice.getvalue()
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo(f"{first}/config.json")
        info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
        archive.writestr(info, "/etc/passwd")
    out["a symlink entry"] = link.getvalue()

    def json_edit(name, change):
        def edit(entry, data):
            if entry == f"{first}/{name}":
                doc = json.loads(data)
                change(doc)
                return entry, json.dumps(doc).encode()
            return entry, data
        return edit

    def setter(*keys, value):
        def change(doc):
            for key in keys[:-1]:
                doc = doc[key]
            doc[keys[-1]] = value
        return change

    for label, name, change in (
        ("test_accuracy '0.99'", "metrics.json", setter("test_accuracy", value="0.99")),
        ("a 5,000-character data title", "metrics.json", setter("data", "title", value="x" * 5000)),
        ("metrics of another run", "metrics.json", setter("run_id", value=FAKE)),
        ("an alias '../../etc'", "config.json", setter("aliases", value=["../../etc"])),
        ("a loss 'NaN'", "history.json", setter("epochs", 0, "loss", value="NaN")),
        ("an epoch without seconds", "history.json", lambda doc: doc["epochs"][0].pop("seconds")),
        ("a config with an unknown field", "config.json", setter("config", "evil", value="<script>")),
        ("an HTML status", "metrics.json", setter("status", value="<img src=http://evil.example/x.png>")),
    ):
        out[label] = rebuild(good, json_edit(name, change))
    return out


def bundles_phase(s: Surface, scratch: Path, runs: dict, prints: dict, shared: dict, poisoned_clones: dict) -> None:
    target = copy_runs(runs, scratch / "bundle-target", names=["cnn_parity"])
    RunStore(target).list_runs()
    good = bundles.export_bundle(RunStore(runs[DONOR].path.parent), [runs[DONOR].run_id, runs[VICTIM].run_id])
    ids = [runs[DONOR].run_id, runs[VICTIM].run_id]

    def attempt(p: Probe, payload: bytes, expect_refused: bool) -> None:
        before = snapshot(target)
        try:
            imported, _ = bundles.import_bundle(RunStore(target), payload)
        except BundleError:
            imported = None
        except (MnistlabError, OSError) as exc:
            imported = None
            p._note("note", f"refused with {type(exc).__name__} rather than BundleError: {exc}")
        if imported is None:
            if snapshot(target) != before:
                p.lose("a refused bundle changed the store")
            return
        if expect_refused:
            p.miss(f"imported {imported}")
        for run_id in imported:  # put the target back as it was
            shutil.rmtree(target / run_id, ignore_errors=True)
        if snapshot(target) != before:
            p.lose("the store is not as it was after removing what was imported")

    probe(s, "a good bundle (imported, then removed)", lambda p: attempt(p, good, expect_refused=False))
    clone_folders = {cid: shared["root"] / rid for cid, rid in shared["clones"].items()}
    clone_folders.update(poisoned_clones)
    for cid, folder in clone_folders.items():
        case = shared["cases"][cid]
        probe(s, f"bundle of {cid}", lambda p, folder=folder, case=case: attempt(p, pack(folder), case.stage != "fine"))
    hostile = zip_bundles(good, ids)
    for label, payload in hostile.items():
        probe(s, f"bundle: {label}", lambda p, payload=payload: attempt(p, payload, True))

    def oversize(p: Probe) -> None:
        limit = bundles.MAX_BUNDLE_BYTES
        bundles.MAX_BUNDLE_BYTES = 1000
        try:
            attempt(p, good, True)
        finally:
            bundles.MAX_BUNDLE_BYTES = limit
    probe(s, "bundle: larger than the limit", oversize)

    files = scratch / "bundle-files"  # the zip-level ones through `mnistlab import` too
    files.mkdir()
    calls, labels = [], []
    for i, (label, payload) in enumerate(hostile.items()):
        (files / f"{i}.zip").write_bytes(payload)
        calls.append(["import", str(files / f"{i}.zip"), "--store", str(target)])
        labels.append(label)
    before = snapshot(target)
    if time.monotonic() - START <= BUDGET_S:
        for label, result in zip(labels, cli_many(calls)):
            probe(s, f"mnistlab import: {label}", lambda p, result=result: check_cli(p, result, {2}))
        if snapshot(target) != before:
            s.lost += 1
            PROBLEMS.append("[bundles] run lost: the CLI imports of refused bundles changed the store")
    else:
        s.skipped += len(calls)
    check_healthy(Probe(s, "bundle target"), target, runs, prints, ["cnn_parity"])


# -- the run -------------------------------------------------------------------------------
def shared_store(scratch: Path, runs: dict, skip: set[str]) -> dict:
    """One store: the healthy runs, every damaged copy side by side, and a run with a hostile data title."""
    root = copy_runs(runs, scratch / "shared" / "runs")
    clones, seeds = {}, {}
    for seed, case in enumerate(CASES, start=300):
        if case.id in skip or not (runs[VICTIM].path / case.file).exists():
            continue
        run_id = clone_run(runs[VICTIM].path, root, seed, created=OLD)
        damage_run(root / run_id, case, runs[DONOR].path)
        clones[case.id], seeds[case.id] = run_id, seed
    hostile = clone_run(runs[DONOR].path, root, 999)
    metrics = json.loads((root / hostile / "metrics.json").read_text(encoding="utf-8"))
    metrics["data"].update(title=" ".join(SHORT)[:200], reason=" ".join(reversed(SHORT)))
    (root / hostile / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return {"root": root, "clones": clones, "seeds": seeds, "cases": {c.id: c for c in CASES}}


def poisoned_stores(scratch: Path, runs: dict, poisoners: set[str]) -> tuple[dict, Path | None, dict]:
    """Per poisoning case a store of its own (for the CLI), one store with all of them (for the pages),
    and the damaged folders (for bundles)."""
    cases = {c.id: c for c in CASES}
    own, folders = {}, {}
    together = copy_runs(runs, scratch / "poisoned" / "all") if poisoners else None
    for seed, cid in enumerate(sorted(poisoners), start=700):
        root = copy_runs(runs, scratch / "poisoned" / cid)
        damage_run(root / runs[VICTIM].run_id, cases[cid], runs[DONOR].path)
        own[cid] = root
        run_id = clone_run(runs[VICTIM].path, together, seed, created=OLD)
        damage_run(together / run_id, cases[cid], runs[DONOR].path)
        folders[cid] = together / run_id
    return own, together, folders


def dead_worker_delay(root: Path) -> float | None:
    """Seconds from SIGKILL of a process training a run to the queue taking that run back.

    A `mnistlab train` process is killed after its first epoch; then the queue is polled as any
    launch does (``claim``), and the clock stops when the attempt is training again here.
    """
    import signal

    from mnistlab.runs.store import RunStore
    from mnistlab.runs.worker import max_trainings
    from tests.conftest import tiny_config

    store = RunStore(root)
    config = tiny_config(epochs=40, train_size=1000)
    run_id = store.resolve(config).run_id
    process = subprocess.Popen([sys.executable, "-m", "mnistlab", "train", "--store", str(root), "--data", "sample",
                                "--arch", "mlp", "--epochs", "40", "--train-size", "1000", "--validation",
                                "fraction", "--json"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        attempt = store.live.latest(run_id) if root.is_dir() and (root / "live.sqlite3").exists() else None
        if attempt is not None and attempt.epochs_done >= 1:
            break
        time.sleep(0.1)
    else:
        process.kill()
        return None
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 60:
        claimed = store.live.claim("faults-benchmark", max_trainings(store), run_id=run_id)
        if claimed is not None:
            store.live.finish(claimed.id, "cancelled", "benchmark done")
            return time.monotonic() - killed
        time.sleep(0.1)
    return None


def main() -> None:
    surfaces = {name: Surface(name) for name in ("library", "cli", "pages", "bundles", "links", "chromium")}
    with tempfile.TemporaryDirectory(prefix="mnistlab-faults-") as tmp:
        scratch = Path(tmp)
        os.environ["MNISTLAB_STORE"] = str(scratch / "default")
        started = time.monotonic()
        runs = train_runs(scratch / "trained" / "runs")
        train_s = time.monotonic() - started
        prints = {name: fingerprint(run) for name, run in runs.items()}
        trained_files = snapshot(scratch / "trained" / "runs")

        def timed(surface: Surface, phase, *args):
            started = time.monotonic()
            try:
                return phase(surface, *args)
            finally:
                surface.seconds = time.monotonic() - started

        poisoners = timed(surfaces["library"], library_phase, scratch, runs, prints)
        shared = shared_store(scratch, runs, poisoners)
        own, together, poisoned_folders = poisoned_stores(scratch, runs, poisoners)
        timed(surfaces["cli"], cli_phase, shared, own, runs)
        timed(surfaces["bundles"], bundles_phase, scratch, runs, prints, shared, poisoned_folders)
        timed(surfaces["pages"], pages_phase, shared, together, scratch, runs)
        timed(surfaces["links"], links_phase, shared["root"])
        if CHROMIUM.is_file():
            timed(surfaces["chromium"], browser_phase, shared["root"])
        else:
            PROBLEMS.append("[chromium] skipped: /usr/bin/chromium is not installed")

        final = Probe(surfaces["library"], "the trained runs at the end")
        check_healthy(final, scratch / "trained" / "runs", runs, prints, list(runs))
        if {k: v for k, v in snapshot(scratch / "trained" / "runs").items() if not k.startswith("live.sqlite3")} != \
                {k: v for k, v in trained_files.items() if not k.startswith("live.sqlite3")}:
            final.lose("the trained store's files changed")
        check_healthy(Probe(surfaces["pages"], "the shared store at the end"), shared["root"], runs, prints,
                      list(runs))

        delay = dead_worker_delay(scratch / "dead-worker")
        if delay is not None:
            PROBLEMS.append(f"[live] a worker killed while training: its run was taken back after {delay:.1f} s "
                            "(heartbeat stale and process gone)")
        else:
            PROBLEMS.append("[live] the killed worker's run was not taken back within 60 s")

    rows = [[s.name, s.cases, s.crashes, s.lost, s.foreign, s.missed, s.skipped + s.harness, s.seconds]
            for s in surfaces.values()]
    totals = [sum(r[i] for r in rows) for i in range(1, 8)]
    rows.append(["total", *totals])
    for line in PROBLEMS:
        print(line)
    if PROBLEMS:
        print()
    print(f"trained 3 tiny runs on the sample in {train_s:.1f} s; {len(CASES)} damage cases, "
          f"{len(PAGES)} pages; {time.monotonic() - START:.0f} s in all")
    print(table(["surface", "cases", "crashes", "runs lost", "foreign", "missed", "skipped", "seconds"], rows))
    cases, crashes, lost, foreign = totals[0], totals[1], totals[2], totals[3]
    print(f"faults: {cases} cases, {crashes} crashes, {lost} runs lost, {foreign} foreign requests")


if __name__ == "__main__":
    threading.current_thread().name = "faults"
    main()
