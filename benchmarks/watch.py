"""The cost of one tick of the page watch (pages/watch.py): computing the store's state token.

Every open page polls ``RunStore.state_token()`` every 2 seconds; a tick must cost well under
a millisecond of server CPU. The store here has 300 run folders (empty folders named like run
ids: the token reads no run file) and a live state with a few attempts.

Ratios (1.00x or more meets the target): ``tick_under_1ms`` = 1 ms / median tick (nothing
changed, the usual tick; median of 1,000); ``new_thread_under_1ms`` = the same from a new
thread each time (Streamlit runs each fragment rerun in a new thread; median of 200);
``rescan_under_1ms`` = 1 ms / a tick that lists the root folder again (its time moved: a run
came or went, or SQLite's side files did; median of 1,000).

    python benchmarks/watch.py
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

from common import summary, table

from mnistlab.runs.store import RunStore

FOLDERS = 300


def timed(call, repeat: int) -> float:
    """Median seconds of ``call()`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def in_new_threads(call, repeat: int) -> float:
    """Median seconds of ``call()`` made once in each of ``repeat`` new threads (the thread's start not counted)."""
    times = []

    def one() -> None:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)

    for _ in range(repeat):
        thread = threading.Thread(target=one)
        thread.start()
        thread.join()
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        store.root.mkdir(parents=True)
        for _ in range(FOLDERS):
            (store.root / secrets.token_hex(8)).mkdir()
        live = store.live
        for i in range(5):
            live.launch([(f"{i:016x}", {"epochs": 3}, f'{{"i": {i}}}', 3)])
        live.finish(live.active()[0].id, "cancelled")
        token = store.state_token()
        assert token == store.state_token() and token[1] == (4, 1), token

        tick = timed(store.state_token, 1000)
        new_thread = in_new_threads(store.state_token, 200)

        def rescan() -> None:
            store._root_entries = None  # as when the root folder's time moved
            store.state_token()

        rescan_s = timed(rescan, 1000)
        assert store.state_token() == token

    us = 1e6
    print(table(["what", "microseconds"], [
        [f"tick, nothing changed: {FOLDERS} run folders, 5 attempts (median of 1,000)", tick * us],
        ["the same, each from a new thread (median of 200)", new_thread * us],
        [f"tick that lists the root again ({FOLDERS} folders; median of 1,000)", rescan_s * us],
    ]))
    print(summary("watch", {"tick_under_1ms": 1e-3 / tick, "new_thread_under_1ms": 1e-3 / new_thread,
                            "rescan_under_1ms": 1e-3 / rescan_s}))


if __name__ == "__main__":
    main()
