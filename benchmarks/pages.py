"""Page render times in Streamlit's AppTest on a store of 50 runs, and TensorFlow imports.

Each page renders in a fresh process (so a TensorFlow import shows). Ratio = 2 s budget /
first render time, except that a read-only page (Compare, Inspect, Data, Filters) that imports
TensorFlow scores 0.00x: it must not.

    python benchmarks/pages.py
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
    print(summary("pages", ratios))


if __name__ == "__main__":
    main()
