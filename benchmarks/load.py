"""A crowd on one shared link: the real read-only server, N viewers at once (issue 16).

Writes a store of 300 synthetic runs (``tests.synthetic.write_runs``: 100 configurations x 3 seeds,
no training), starts the real server as ``mnistlab serve --read-only`` would (its command line
and config, bound to 127.0.0.1), then opens the same 12-run Compare link and the same Inspect link
(run vs second run):

- protocol viewers (N = 1, 10, 50): each is one websocket session speaking Streamlit's own
  protocol, as the browser does: ``/_stcore/stream`` with the ``streamlit`` subprotocol, a
  ``BackMsg`` ``rerun_script`` carrying the link's query string and page name, then
  ``ForwardMsg`` s until the script run finishes. Time to first chart = until the first delta
  carrying a ``plotly_chart``. N = 1 is one viewer at a time, ``--repeat`` times (no other
  session open: Streamlit then compiles the page scripts again for each, as for a lone visitor).
- browser viewers (N = 1, 5): headless Chromium contexts (fresh sessions), from navigation to
  the first drawn Plotly chart. A cross-check: the browsers share the 2 cores with the server.

Per N and page: time to first chart (median, p95), failures (an exception element, a run that
did not finish, a timeout), the server's CPU seconds per viewer (``/proc`` of the server pid via
psutil: the clients' own cost is not in it; measured until the server is idle again, so work a
viewer leaves behind counts) and the server's RSS after the viewers left. One warm-up viewer per
page runs first (imports, the first listing, the background estimate); "after the first" numbers
are the measured rows. Then: RSS per idle session and the server's CPU while they sit idle (50
sessions kept open: each polls the store every 2 s), and RSS growth after 200 viewers come and go
(RSS every 50, then after the server settled).

The crowd that does not break it (``--hostile``, in the default run): 50 viewers at once on
Compare, Inspect and Filters links, most of them hostile (oversized run lists, bad prefixes and
configurations, markup in ``q`` and ``sweep``, unknown modes and pages, huge and non-finite numbers,
bad percent-encoding), while one viewer reloads the Compare link every second for a minute
(``--reload-seconds``) and a thread asks ``/_stcore/health`` every 0.5 s. It must see no exception
element on any page, every run finish, and every health check answered within 2 s.

Every connection goes to 127.0.0.1; the whole run is bounded (--deadline).

    python benchmarks/load.py                 # everything (about 4-5 minutes on 2 cores)
    python benchmarks/load.py --quick         # N = 1, 10 protocol, N = 1 browser, 60 come-and-go, 20 s reload
    python benchmarks/load.py --hostile --protocol '' --browsers '' --come-and-go 0   # the crowd alone

Last lines: ``hostile: 50 viewers (H hostile) + 1 reloading for 60 s, E exceptions, U unfinished,
health F/N failed`` and ``load: 50 viewers, F failures, server X.XX CPU-s/viewer, RSS +N MB``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import psutil
from common import ROOT, table

from tests.serving import free_port, wait_healthy  # noqa: E402

HOST = "127.0.0.1"
CHART_TIMEOUT_S = 120.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def build_store(root: Path, count: int):
    """``count`` synthetic runs (``tests.synthetic``: valid, varied, no training; 3 seeds per configuration,
    two diverged), so the Compare page draws everything it can: panels, parallel coordinates, importance."""
    from mnistlab.runs.store import RunStore
    from tests.synthetic import synthetic_configs, write_runs

    store = RunStore(root / "runs")
    write_runs(store, synthetic_configs(count, seeds=3), diverged=(7, count // 2) if count > 8 else ())
    return store


def links(store) -> dict[str, tuple[str, str]]:
    """The shared links: page name -> (page, query string)."""
    from mnistlab.views import share

    runs = store.list_runs().runs
    compare = share.CompareView(runs=tuple(share.RunRef(r.run_id, r.config) for r in runs[:12]))
    finished = [r for r in runs if r.is_finished]
    same = [r for r in finished if r.config.task == finished[0].config.task and r.run_id != finished[0].run_id]
    inspect = share.InspectView(run=share.RunRef(finished[0].run_id, finished[0].config),
                                second=share.RunRef(same[0].run_id, same[0].config))
    return {"compare": ("compare", urlencode(compare.to_params(), safe=",~:")),
            "inspect": ("inspect", urlencode(inspect.to_params(), safe=",~:"))}


def start_server(store_root: Path, port: int):
    """The server exactly as ``mnistlab serve --read-only`` starts it, but on 127.0.0.1."""
    from mnistlab.cli import serve_command

    args = SimpleNamespace(port=port, address=HOST, read_only=True, store=str(store_root))
    command, env, _ = serve_command(args)
    env.update(MNISTLAB_DATA="sample", MNISTLAB_OFFLINE="1")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_healthy(f"http://{HOST}:{port}"):
        return process
    process.kill()
    raise SystemExit("the server did not become healthy in 60 s")


class Server:
    def __init__(self, process):
        self.proc = psutil.Process(process.pid)

    def cpu(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20


# -- protocol viewers ---------------------------------------------------------------------------
def _rerun_message(page: str, query: str, page_hash: str = "", fragment: str = "") -> bytes:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_name = page
    msg.rerun_script.page_script_hash = page_hash
    msg.rerun_script.is_auto_rerun = bool(fragment)
    if fragment:
        msg.rerun_script.fragment_id = fragment
    return msg.SerializeToString()


async def _stay(ws, hold: asyncio.Event, page: str, query: str, state: dict, result: dict) -> None:
    """Stay on the page as an open browser tab does until ``hold`` is set: rerun each fragment
    that asked to rerun itself (``st.fragment(run_every=...)``: the store watch, a background
    estimate's poll) at its interval, and read what comes back."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    fragments = state["fragments"]
    due = {fragment: time.monotonic() + every for fragment, every in fragments.items()}

    async def read() -> None:
        while True:
            msg = ForwardMsg()
            msg.ParseFromString(await ws.recv())
            kind = msg.WhichOneof("type")
            if kind == "auto_rerun":
                fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                due.setdefault(msg.auto_rerun.fragment_id, time.monotonic() + msg.auto_rerun.interval)
            elif kind == "stop_auto_rerun":
                for fragment in msg.stop_auto_rerun.fragment_ids:
                    fragments.pop(fragment, None)
                    due.pop(fragment, None)
            elif kind == "delta" and msg.delta.new_element.WhichOneof("type") == "exception":
                exception = msg.delta.new_element.exception
                result["exceptions"].append(f"{exception.type}: {exception.message}"[:200])

    reader = asyncio.create_task(read())
    try:
        while not hold.is_set() and not reader.done():
            now = time.monotonic()
            for fragment, when in list(due.items()):
                if when <= now and fragment in fragments:
                    await ws.send(_rerun_message(page, query, state["page_hash"], fragment))
                    due[fragment] = now + fragments[fragment]
                    result["ticks"] += 1
            wait = min(due.values(), default=now + 1.0) - time.monotonic()
            try:
                await asyncio.wait_for(hold.wait(), timeout=max(0.05, wait))
            except TimeoutError:
                pass
    finally:
        reader.cancel()


async def protocol_viewer(port: int, page: str, query: str, hold: asyncio.Event | None = None,
                          chart: bool = True, ran: list | None = None) -> dict:
    """One viewer: connect, ask for the page as the browser does, read until the run finishes.

    ``ok``: the run finished, with no exception element, and (``chart``) drew a Plotly chart.
    ``hold``: keep the session open until it is set (``ran`` gets one item when the run ended)."""
    import websockets
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    started = time.perf_counter()
    result = {"chart": None, "ok": False, "finished": False, "error": None, "exceptions": [], "ticks": 0}
    state = {"fragments": {}, "page_hash": ""}
    try:
        async with websockets.connect(f"ws://{HOST}:{port}/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=CHART_TIMEOUT_S) as ws:
            await ws.send(_rerun_message(page, query))
            async with asyncio.timeout(CHART_TIMEOUT_S):
                while True:
                    msg = ForwardMsg()
                    msg.ParseFromString(await ws.recv())
                    kind = msg.WhichOneof("type")
                    if kind == "new_session":
                        state["page_hash"] = msg.new_session.page_script_hash
                    elif kind == "auto_rerun":
                        state["fragments"][msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                    elif kind == "stop_auto_rerun":
                        for fragment in msg.stop_auto_rerun.fragment_ids:
                            state["fragments"].pop(fragment, None)
                    elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                        element = msg.delta.new_element.WhichOneof("type")
                        if element == "plotly_chart" and result["chart"] is None:
                            result["chart"] = time.perf_counter() - started
                        elif element == "exception":
                            exception = msg.delta.new_element.exception
                            result["exceptions"].append(f"{exception.type}: {exception.message}"[:200])
                    elif kind == "script_finished":
                        if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                            continue  # the app's own st.rerun: the next run follows
                        result["finished"] = msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                        break
            if hold is not None:
                if ran is not None:
                    ran.append(True)
                await _stay(ws, hold, page, query, state, result)
    except Exception as exc:  # noqa: BLE001 - a failure to count, with its reason
        result["error"] = f"{type(exc).__name__}: {exc}"[:200]
    if result["exceptions"] and result["error"] is None:
        result["error"] = "an exception element: " + result["exceptions"][0]
    elif not result["finished"] and result["error"] is None:
        result["error"] = "the script run did not finish"
    result["ok"] = result["finished"] and result["error"] is None and (result["chart"] is not None or not chart)
    if result["ok"] is False and result["error"] is None:
        result["error"] = "no chart"
    return result


async def protocol_crowd(port: int, n: int, page: str, query: str) -> list[dict]:
    return await asyncio.gather(*(protocol_viewer(port, page, query) for _ in range(n)))


async def one_at_a_time(port: int, repeat: int, page: str, query: str) -> list[dict]:
    """``repeat`` lone viewers, each after the previous one left."""
    return [await protocol_viewer(port, page, query) for _ in range(repeat)]


# -- browser viewers --------------------------------------------------------------------------
async def browser_crowd(port: int, n: int, page: str, query: str) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        async def one() -> dict:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            tab = await context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            started = time.perf_counter()
            try:
                await tab.goto(f"http://{HOST}:{port}/{page}?{query}")
                await tab.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=CHART_TIMEOUT_S * 1000)
                chart = time.perf_counter() - started
                exceptions = await tab.locator('[data-testid="stException"]').count()
                return {"chart": chart, "ok": exceptions == 0 and not errors,
                        "error": (errors or [None])[0] if not exceptions else "an exception on the page"}
            except Exception as exc:  # noqa: BLE001
                return {"chart": None, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
            finally:
                await context.close()

        try:
            return await asyncio.gather(*(one() for _ in range(n)))
        finally:
            await browser.close()


# -- measuring ----------------------------------------------------------------------------------
def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def settle(server: Server, least: float = 0.5, most: float = 30.0, quiet: float = 0.02) -> None:
    """Wait until the server is idle: its sessions closed, their script threads and any background
    work they started (the importance estimate) ended: under ``quiet`` of a core over 0.5 s."""
    time.sleep(least)
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = server.cpu()
        time.sleep(0.5)
        if server.cpu() - before < quiet * 0.5:
            return


def measure(server: Server, crowd, kind: str, n: int, page: str, viewers: int | None = None) -> dict:
    """One row: ``crowd`` (a coroutine) run to its end and the server settled; ``viewers``: how
    many viewers it opens (default ``n``)."""
    viewers = viewers or n
    before = server.cpu()
    started = time.perf_counter()
    results = asyncio.run(crowd)
    wall = time.perf_counter() - started
    settle(server)
    cpu = server.cpu() - before
    charts = [r["chart"] for r in results if r["chart"] is not None]
    failures = [r for r in results if not r["ok"]]
    for failure in failures[:3]:
        print(f"  failure ({kind}, {page}): {failure['error']}", file=sys.stderr)
    return {"kind": kind, "n": n, "page": page, "median": statistics.median(charts) if charts else float("nan"),
            "p95": p95(charts) if charts else float("nan"), "failures": len(failures), "cpu": cpu / viewers,
            "wall": wall, "rss": server.rss_mb()}


async def idle_sessions(port: int, n: int, page: str, query: str, server: Server) -> tuple[float, float, int]:
    """(RSS per session kept open after its run in MB, the server's CPU per idle session in ms per
    second, the fragment reruns they asked for) with ``n`` viewers holding their sessions open as
    browser tabs do (the store watch reruns its fragment every 2 s)."""
    hold = asyncio.Event()
    ran: list = []
    before = server.rss_mb()
    tasks = [asyncio.create_task(protocol_viewer(port, page, query, hold, ran=ran)) for _ in range(n)]
    deadline = time.monotonic() + CHART_TIMEOUT_S
    while len(ran) + sum(t.done() for t in tasks) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # what the runs left behind ends; each session has polled once
    held = server.rss_mb()
    busy = server.cpu()
    await asyncio.sleep(6.0)  # three polls of each session
    idle_cpu = (server.cpu() - busy) / 6.0 / n * 1000
    hold.set()
    results = await asyncio.gather(*tasks)
    exceptions = sum(len(r["exceptions"]) for r in results)
    if exceptions or any(not r["ok"] for r in results):
        print(f"  idle sessions: {exceptions} exceptions, {sum(not r['ok'] for r in results)} failures",
              file=sys.stderr)
    return (held - before) / n, idle_cpu, sum(r["ticks"] for r in results)


# -- a crowd with hostile links (item 4 of issue 16) --------------------------------------------
def hostile_links(store) -> list[tuple[str, str, str]]:
    """(what, page, query string) of links no page should fail on, and of the real ones."""
    runs = store.list_runs().runs
    real = [r.run_id for r in runs[:12]] * 2  # (twice: a store of one run still gives two)
    ids = ",".join(f"{i:016x}" for i in range(400))  # 400 well-formed ids: too many, none stored
    markup = quote("<script>alert(1)</script> **bold** [x](javascript:alert(1)) $$\\frac{1}{0}$$ :red[x] <img src=x "
                   "onerror=alert(1)> ``` {{7*7}} ${7*7} \u202e\u0000")
    big = "9" * 1999
    return [
        ("oversized run list", "compare", f"runs={ids}"),
        ("run list longer than any value", "compare", "runs=" + ",".join([real[0]] * 2000)),
        ("bad prefixes", "compare", "runs=" + ",".join(["0", "ab", "zzzz", "../../etc/passwd", "%2e%2e%2f", real[0][:3],
                                                       "0000", real[0][:4].upper(), real[1] + "ff", "-1", "", ","])),
        ("bad run configurations", "compare", (f"runs={real[0][:6]}~cnn~e:1e999~b:-5~lr:nan,{real[1]}~zz:1~~,"
                                               f"ffffffffffffffff~mlp~e:{big[:50]}~d:/etc/passwd")),
        ("markup in q and sweep", "compare", f"runs={real[0]}&q={markup}&sweep={markup}"),
        ("a 200 KB q", "compare", "q=" + "a" * 200_000),
        ("unknown modes and choices", "compare", (f"runs={','.join(real[:3])}&mode=3d&x=wallclock&band=xx"
                                                  "&color=__class__&metric=../x&logy=yes&full=2&groups=-1&fs=deleted"
                                                  "&fa=<b>&fo=sgd,,sgd")),
        ("huge and non-finite numbers", "compare", f"runs={real[0]}&smoothing=1e308&fb={big}&fb=1,2,3,1e9,nan,-0"),
        ("non-finite smoothing", "compare", f"runs={real[0]}&smoothing=nan&fb=" + ",".join(str(i) for i in range(600))),
        ("repeated keys and bad encoding", "compare", f"runs={real[0]}&runs={real[1]}&mode=%zz&q=%ff%fe%00&x=%"),
        ("inspect: huge numbers", "inspect", f"run={real[0]}&vs={real[0]}&true=1e400&pred=-1&epoch={big}&norm=2"),
        ("inspect: bad runs", "inspect", f"run=../{real[0]}&vs={markup}&true=nan&pred=9999999999999999999999"),
        ("inspect: prefix and configuration", "inspect", f"run={real[0][:4]}~deep_cnn~e:999999&vs=0000~mlp&epoch=0"),
        ("filters: hostile kernel", "filters", "digit=" + "9" * 40 + "&preset=<b>x</b>&kernel=1e309,nan,inf,-inf," +
                                               ",".join(["1"] * 500) + "&pad=../&relu=yes"),
        ("filters: negative digit", "filters", "digit=-5&preset=../../x&kernel=&pad=same&relu=1"),
        ("an unknown page", "no-such-page", f"runs={real[0]}&q={markup}"),
    ]


def _health(base: str, stop: threading.Event, every: float, found: dict) -> None:
    """Ask ``/_stcore/health`` every ``every`` seconds until ``stop``; count answers, failures, the slowest."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2.0) as response:
                ok = response.read() == b"ok"
        except OSError:
            ok = False
        took = time.perf_counter() - started
        found["asked"] += 1
        found["failed"] += not ok
        found["slowest"] = max(found["slowest"], took)
        stop.wait(max(0.0, every - took))


async def reloading_viewer(port: int, page: str, query: str, seconds: float) -> list[dict]:
    """One viewer reloading every second: each reload is a new session (the old one is closed,
    its run cut short if it had not finished)."""
    results = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        task = asyncio.create_task(protocol_viewer(port, page, query))
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if task in done:
            results.append(task.result())
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        else:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            results.append({"ok": None, "cut": True, "exceptions": [], "error": None, "chart": None})
    return results


async def hostile_crowd(port: int, links: list[tuple[str, str, str]], real: dict, n: int, seconds: float):
    """``n`` viewers arriving over 5 s, the hostile links and the real ones in turn, and one
    viewer reloading the real Compare link every second for ``seconds``."""
    plan = [links[i // 2 % len(links)] if i % 4 != 3 else ("a real link", *real["compare" if i % 8 == 3 else "inspect"])
            for i in range(n)]

    async def arrive(i: int, what: str, page: str, query: str) -> dict:
        await asyncio.sleep(5.0 * i / n)
        result = await protocol_viewer(port, page, query, chart=False)
        return {**result, "what": what}

    reloads = asyncio.create_task(reloading_viewer(port, *real["compare"], seconds))
    viewers = await asyncio.gather(*(arrive(i, *link) for i, link in enumerate(plan)))
    return viewers, await reloads


def run_hostile(port: int, store, shared: dict, n: int, seconds: float, server: Server) -> dict:
    found = {"asked": 0, "failed": 0, "slowest": 0.0}
    stop = threading.Event()
    poller = threading.Thread(target=_health, args=(f"http://{HOST}:{port}", stop, 0.5, found), daemon=True)
    links = hostile_links(store)
    before = server.cpu()
    poller.start()
    try:
        viewers, reloads = asyncio.run(hostile_crowd(port, links, shared, n, seconds))
    finally:
        stop.set()
        poller.join(timeout=5)
    settle(server)
    exceptions = [(v.get("what", "reload"), e) for v in [*viewers, *reloads] for e in v["exceptions"]]
    unfinished = [(v["what"], v["error"]) for v in viewers if not v["finished"]]
    finished_reloads = [r for r in reloads if not r.get("cut")]
    unfinished += [("reload", r["error"]) for r in finished_reloads if not r["finished"]]
    for what, error in (exceptions + unfinished)[:5]:
        print(f"  hostile failure ({what}): {error}", file=sys.stderr)
    charts = [r["chart"] for r in finished_reloads if r["chart"] is not None]
    return {"viewers": len(viewers), "hostile": sum(v["what"] != "a real link" for v in viewers),
            "reloads": len(reloads), "cut": len(reloads) - len(finished_reloads), "seconds": seconds,
            "exceptions": len(exceptions), "unfinished": len(unfinished), "health": found,
            "reload_chart": statistics.median(charts) if charts else float("nan"),
            "cpu": server.cpu() - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--protocol", default="1,10,50", help="protocol crowd sizes (1: one at a time, --repeat times)")
    parser.add_argument("--repeat", type=int, default=5, help="lone viewers measured for N = 1")
    parser.add_argument("--browsers", default="1,5", help="browser crowd sizes ('' for none)")
    parser.add_argument("--come-and-go", type=int, default=200, help="viewers for the growth check")
    parser.add_argument("--hostile", action=argparse.BooleanOptionalAction, default=True,
                        help="the crowd with hostile links and a reloading viewer (default: on)")
    parser.add_argument("--reload-seconds", type=float, default=60.0, help="how long the viewer keeps reloading")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy (raw folded stacks, only "
                        "the thread holding the GIL) while the biggest protocol crowd opens the Compare link")
    parser.add_argument("--deadline", type=float, default=900, help="seconds before it stops by itself")
    args = parser.parse_args()
    if args.quick:
        args.protocol, args.browsers, args.come_and_go, args.reload_seconds = "1,10", "1", 60, 20.0
    protocol_sizes = [int(v) for v in args.protocol.split(",") if v]
    browser_sizes = [int(v) for v in args.browsers.split(",") if v] if Path(CHROMIUM).is_file() else []
    stop_at = time.monotonic() + args.deadline

    work = Path(tempfile.mkdtemp(prefix="mnistlab-load-"))
    process = None
    try:
        print(f"writing a store of {args.runs} runs…", flush=True)
        store = build_store(work, args.runs)
        shared = links(store)
        port = free_port()
        process = start_server(store.root, port)
        server = Server(process)
        rss_start = server.rss_mb()
        rows = []
        first = {}
        for name, (page, query) in shared.items():  # the first viewer of each link: imports, first listing
            before = server.cpu()
            warm = asyncio.run(protocol_viewer(port, page, query))
            settle(server)
            first[name] = (warm, server.cpu() - before)
            print(f"first viewer of {name}: chart after {warm['chart'] or float('nan'):.2f} s, "
                  f"server {first[name][1]:.2f} CPU-s (with the work it leaves running), ok={warm['ok']} "
                  f"{warm['error'] or ''}", flush=True)
        rss_warm = server.rss_mb()
        print(f"server RSS: {rss_start:.0f} MB started, {rss_warm:.0f} MB after the first viewers", flush=True)
        for n in protocol_sizes:
            for name, (page, query) in shared.items():
                if time.monotonic() > stop_at:
                    break
                spy = None
                if args.profile and n == max(protocol_sizes) and name == "compare" and shutil.which("py-spy"):
                    spy = subprocess.Popen(["py-spy", "record", "--pid", str(process.pid), "--format", "raw", "--gil",
                                            "--rate", "250", "--nonblocking", "-o", args.profile],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                crowd = one_at_a_time(port, args.repeat, page, query) if n == 1 else protocol_crowd(port, n, page, query)
                rows.append(measure(server, crowd, "protocol", n, name, viewers=args.repeat if n == 1 else n))
                if spy is not None:
                    spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                    spy.wait(timeout=30)
        for n in browser_sizes:
            for name, (page, query) in shared.items():
                if time.monotonic() > stop_at:
                    break
                rows.append(measure(server, browser_crowd(port, n, page, query), "chromium", n, name))
        if rows:
            print(table(["viewers", "client", "link", "first chart median s", "p95 s", "failures",
                         "server CPU-s/viewer", "wall s", "server RSS after MB"],
                        [[r["n"] if not (r["n"] == 1 and r["kind"] == "protocol") else f"1 (x{args.repeat})",
                          r["kind"], r["page"], r["median"], r["p95"], r["failures"], r["cpu"], r["wall"], r["rss"]]
                         for r in rows]))

        hostile = None
        if args.hostile and time.monotonic() < stop_at:
            hostile = run_hostile(port, store, shared, 50, args.reload_seconds, server)
            health = hostile["health"]
            print(f"hostile: {hostile['viewers']} viewers ({hostile['hostile']} hostile) + 1 reloading every second "
                  f"for {hostile['seconds']:.0f} s ({hostile['reloads']} reloads, {hostile['cut']} cut short by the "
                  f"next, first chart median {hostile['reload_chart']:.2f} s), {hostile['exceptions']} exceptions, "
                  f"{hostile['unfinished']} unfinished, health {health['failed']}/{health['asked']} failed "
                  f"(slowest {health['slowest']:.2f} s), server {hostile['cpu']:.1f} CPU-s", flush=True)

        page, query = shared["compare"]
        if time.monotonic() < stop_at:
            settle(server)
            per_session, idle_ms, ticks = asyncio.run(idle_sessions(port, 50, page, query, server))
            print(f"idle sessions: {per_session:.2f} MB RSS per open session, server {idle_ms:.2f} ms CPU per "
                  f"second per idle session (50 held open on Compare, {ticks} fragment reruns: the store watch "
                  f"every 2 s)", flush=True)
        settle(server)
        rss_before = server.rss_mb()
        gone, trace = 0, [f"{rss_before:.0f}"]
        while gone < args.come_and_go and time.monotonic() < stop_at:
            batch = min(25, args.come_and_go - gone)
            results = asyncio.run(protocol_crowd(port, batch, *shared["compare" if gone % 50 < 25 else "inspect"]))
            gone += batch
            if gone % 50 == 0:
                trace.append(f"{server.rss_mb():.0f}")
            if any(not r["ok"] for r in results):
                print(f"  come-and-go: {sum(not r['ok'] for r in results)} failures", file=sys.stderr)
        settle(server)
        time.sleep(3.0)
        rss_after = server.rss_mb()
        if gone:
            print(f"come and go: {gone} viewers, server RSS {rss_before:.0f} -> {rss_after:.0f} MB "
                  f"({rss_after - rss_before:+.0f} MB; every 50: {' '.join(trace)} MB)")

        crowd = [r for r in rows if r["kind"] == "protocol"]
        biggest = max((r["n"] for r in crowd), default=0)
        top = [r for r in crowd if r["n"] == biggest]
        failures = sum(r["failures"] for r in rows) + sum(not w["ok"] for w, _ in first.values())
        cpu = statistics.mean(r["cpu"] for r in top if r["page"] == "compare") if top else float("nan")
        growth = server.rss_mb() - rss_warm
        print(f"load: {biggest} viewers, {failures} failures, server {cpu:.2f} CPU-s/viewer, RSS {growth:+.0f} MB")
        broken = hostile is not None and (hostile["exceptions"] or hostile["unfinished"] or hostile["health"]["failed"])
        return 1 if failures or broken else 0
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
