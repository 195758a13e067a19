"""A crowd on one shared link: the real read-only server, N viewers at once (issue 16).

Writes a store of 300 synthetic runs (``clone_runs`` from two tiny runs really trained on the
shipped sample), starts the real server as ``mnistlab serve --read-only`` would (its command line
and config, bound to 127.0.0.1), then opens the same 12-run Compare link and the same Inspect link
(run vs second run):

- protocol viewers (N = 10, 50): each is one websocket session speaking Streamlit's own protocol,
  as the browser does: ``/_stcore/stream`` with the ``streamlit`` subprotocol, a ``BackMsg``
  ``rerun_script`` carrying the link's query string and page name, then ``ForwardMsg`` s until the
  script run finishes. Time to first chart = until the first delta carrying a ``plotly_chart``.
- browser viewers (N = 1, 5): headless Chromium contexts (fresh sessions), from navigation to
  the first drawn Plotly chart. A cross-check: the browsers share the 2 cores with the server.

Per N and page: time to first chart (median, p95), failures (an exception element, a run that
did not finish, a timeout), the server's CPU seconds per viewer (``/proc`` of the server pid via
psutil: the clients' own cost is not in it) and the server's RSS after the viewers left. One
warm-up viewer per page runs first (imports, the first listing); "after the first" numbers are
the measured rows. Then: RSS per idle session (50 sessions kept open) and RSS growth after 200
viewers come and go. Every connection goes to 127.0.0.1; the whole run is bounded (--deadline).

    python benchmarks/load.py                 # everything (about 2-4 minutes on 2 cores)
    python benchmarks/load.py --quick         # N = 10 protocol, N = 1 browser, 60 come-and-go

Last line: ``load: 50 viewers, F failures, server X.XX CPU-s/viewer, RSS +N MB``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import psutil
from common import ROOT, clone_runs, table

from tests.serving import free_port, wait_healthy  # noqa: E402

HOST = "127.0.0.1"
CHART_TIMEOUT_S = 120.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def build_store(root: Path, count: int):
    """Two tiny runs really trained on the sample, cloned into ``count`` valid runs."""
    from mnistlab.runs.config import RunConfig
    from mnistlab.runs.store import RunStore

    trained = RunStore(root / "trained")
    templates = [trained.get_or_train(RunConfig(arch=arch, epochs=3, train_size=300, validation="fraction",
                                                data="sample")).run for arch in ("mlp", "cnn")]
    store = RunStore(root / "runs")
    clone_runs(store, templates, count)
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
def _rerun_message(page: str, query: str) -> bytes:
    from streamlit.proto.BackMsg_pb2 import BackMsg

    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_name = page
    msg.rerun_script.page_script_hash = ""
    msg.rerun_script.is_auto_rerun = False
    return msg.SerializeToString()


async def protocol_viewer(port: int, page: str, query: str, hold: asyncio.Event | None = None) -> dict:
    """One viewer: connect, ask for the page as the browser does, read until the run finishes."""
    import websockets
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    started = time.perf_counter()
    result = {"chart": None, "ok": False, "error": None}
    try:
        async with websockets.connect(f"ws://{HOST}:{port}/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=CHART_TIMEOUT_S) as ws:
            await ws.send(_rerun_message(page, query))
            async with asyncio.timeout(CHART_TIMEOUT_S):
                while True:
                    msg = ForwardMsg()
                    msg.ParseFromString(await ws.recv())
                    kind = msg.WhichOneof("type")
                    if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                        element = msg.delta.new_element.WhichOneof("type")
                        if element == "plotly_chart" and result["chart"] is None:
                            result["chart"] = time.perf_counter() - started
                        elif element == "exception":
                            result["error"] = msg.delta.new_element.exception.message[:200]
                    elif kind == "script_finished":
                        if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                            continue  # the app's own st.rerun: the next run follows
                        result["ok"] = msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                        break
            if hold is not None:
                await hold.wait()
    except Exception as exc:  # noqa: BLE001 - a failure to count, with its reason
        result["error"] = f"{type(exc).__name__}: {exc}"[:200]
    result["ok"] = result["ok"] and result["error"] is None and result["chart"] is not None
    return result


async def protocol_crowd(port: int, n: int, page: str, query: str) -> list[dict]:
    return await asyncio.gather(*(protocol_viewer(port, page, query) for _ in range(n)))


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


def settle(server: Server, seconds: float = 1.5) -> None:
    """Wait until the server is idle (its sessions closed, their script threads ended)."""
    time.sleep(seconds)


def measure(server: Server, crowd, kind: str, n: int, page: str) -> dict:
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
            "p95": p95(charts) if charts else float("nan"), "failures": len(failures), "cpu": cpu / n,
            "wall": wall, "rss": server.rss_mb()}


async def idle_sessions(port: int, n: int, page: str, query: str, server: Server) -> float:
    """RSS per session kept open (after its run) by ``n`` viewers, in MB."""
    hold = asyncio.Event()
    before = server.rss_mb()
    tasks = [asyncio.create_task(protocol_viewer(port, page, query, hold)) for _ in range(n)]
    server.proc.cpu_percent(None)
    deadline = time.monotonic() + CHART_TIMEOUT_S
    await asyncio.sleep(2.0)
    while time.monotonic() < deadline and server.proc.cpu_percent(None) > 5:  # until every run is done
        await asyncio.sleep(1.0)
    held = server.rss_mb()
    hold.set()
    await asyncio.gather(*tasks)
    return (held - before) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--protocol", default="10,50", help="protocol crowd sizes")
    parser.add_argument("--browsers", default="1,5", help="browser crowd sizes ('' for none)")
    parser.add_argument("--come-and-go", type=int, default=200, help="viewers for the growth check")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy (raw folded stacks) "
                        "while the biggest protocol crowd opens the Compare link")
    parser.add_argument("--deadline", type=float, default=900, help="seconds before it stops by itself")
    args = parser.parse_args()
    if args.quick:
        args.protocol, args.browsers, args.come_and_go = "10", "1", 60
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
        rows = []
        first = {}
        for name, (page, query) in shared.items():  # the first viewer of each link: imports, first listing
            before = server.cpu()
            warm = asyncio.run(protocol_viewer(port, page, query))
            settle(server, 0.5)
            first[name] = (warm, server.cpu() - before)
            print(f"first viewer of {name}: chart after {warm['chart'] or float('nan'):.2f} s, "
                  f"server {first[name][1]:.2f} CPU-s, ok={warm['ok']} {warm['error'] or ''}", flush=True)
        rss_warm = server.rss_mb()
        for n in protocol_sizes:
            for name, (page, query) in shared.items():
                if time.monotonic() > stop_at:
                    break
                spy = None
                if args.profile and n == max(protocol_sizes) and name == "compare" and shutil.which("py-spy"):
                    spy = subprocess.Popen(["py-spy", "record", "--pid", str(process.pid), "--format", "raw",
                                            "--rate", "200", "--nonblocking", "-o", args.profile],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                rows.append(measure(server, protocol_crowd(port, n, page, query), "protocol", n, name))
                if spy is not None:
                    spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                    spy.wait(timeout=30)
        for n in browser_sizes:
            for name, (page, query) in shared.items():
                if time.monotonic() > stop_at:
                    break
                rows.append(measure(server, browser_crowd(port, n, page, query), "chromium", n, name))
        print(table(["viewers", "client", "link", "first chart median s", "p95 s", "failures", "server CPU-s/viewer",
                     "wall s", "server RSS after MB"],
                    [[r["n"], r["kind"], r["page"], r["median"], r["p95"], r["failures"], r["cpu"], r["wall"],
                      r["rss"]] for r in rows]))

        page, query = shared["compare"]
        per_session = asyncio.run(idle_sessions(port, 50, page, query, server)) if time.monotonic() < stop_at else None
        if per_session is not None:
            print(f"idle sessions: {per_session:.2f} MB RSS per open session (50 held open)")
        settle(server)
        rss_before = server.rss_mb()
        gone = 0
        while gone < args.come_and_go and time.monotonic() < stop_at:
            batch = min(25, args.come_and_go - gone)
            results = asyncio.run(protocol_crowd(port, batch, *shared["compare" if gone % 50 < 25 else "inspect"]))
            gone += batch
            if any(not r["ok"] for r in results):
                print(f"  come-and-go: {sum(not r['ok'] for r in results)} failures", file=sys.stderr)
        settle(server, 3.0)
        rss_after = server.rss_mb()
        print(f"come and go: {gone} viewers, server RSS {rss_before:.0f} -> {rss_after:.0f} MB "
              f"({rss_after - rss_before:+.0f} MB)")

        crowd = [r for r in rows if r["kind"] == "protocol"]
        biggest = max((r["n"] for r in crowd), default=0)
        top = [r for r in crowd if r["n"] == biggest]
        failures = sum(r["failures"] for r in rows) + sum(not w["ok"] for w, _ in first.values())
        cpu = statistics.mean(r["cpu"] for r in top if r["page"] == "compare") if top else float("nan")
        growth = server.rss_mb() - rss_warm
        print(f"load: {biggest} viewers, {failures} failures, server {cpu:.2f} CPU-s/viewer, RSS {growth:+.0f} MB")
        return 0
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
