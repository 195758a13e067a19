"""Shared helpers for the benchmarks: data source, stores of many runs, tables, summary lines.

Every benchmark ends with one line ``<name>: <item> <ratio>x, ...`` where a ratio of 1.00x
or more means the target is met (see each script's docstring for what is divided by what).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MNISTLAB_OFFLINE", "1")


def data_source() -> str:
    """Full MNIST from $MNISTLAB_MNIST (or ../shared/data/mnist.npz); else the sample, with a warning."""
    candidates = [os.environ.get("MNISTLAB_MNIST", ""), str(ROOT.parent / "shared" / "data" / "mnist.npz")]
    for path in candidates:
        if path and Path(path).is_file():
            return path
    warnings.warn("no full MNIST found (set MNISTLAB_MNIST); using the shipped 5,000-digit sample", stacklevel=2)
    return "sample"


def median(values) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
                                           for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(name: str, ratios: dict[str, float]) -> str:
    return f"{name}: " + ", ".join(f"{item} {ratio:.2f}x" for item, ratio in ratios.items())


def clone_runs(store, template_runs, count: int) -> None:
    """Fill ``store`` with ``count`` valid runs copied from real ones, each under its own seed and id."""
    from mnistlab.runs.config import SCHEMA_VERSION

    store.root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        run = template_runs[i % len(template_runs)]
        config = run.config.replace(seed=1000 + i)
        fingerprint = run.metrics["data"]["fingerprint"]
        run_id = config.run_id(fingerprint)
        target = store.root / run_id
        shutil.copytree(run.path, target)
        (target / "config.json").write_text(json.dumps(
            {"run_id": run_id, "config": config.to_dict(), "canonical": config.canonical(fingerprint, SCHEMA_VERSION)}))
        metrics = dict(run.metrics, run_id=run_id)
        (target / "metrics.json").write_text(json.dumps(metrics))
