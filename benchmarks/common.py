"""Shared helpers for the benchmarks: data source, stores of many runs, tables, summary lines.

Every benchmark ends with one line ``<name>: <item> <ratio>x, ...`` where a ratio of 1.00x
or more means the target is met (see each script's docstring for what is divided by what).
"""

from __future__ import annotations

import os
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
    """Fill ``store`` with ``count`` valid runs copied from real ones, each under its own seed and id.

    Each copy is a whole run as the store writes it: its canonical form (with another seed),
    the id hashed from it, and that id inside every file.
    """

    from mnistlab.runs import records
    from mnistlab.runs.config import canonical_json, id_of

    store.root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for run in template_runs:
        p = run.predictions()
        arrays[run.run_id] = (p, run.weights())
    for i in range(count):
        run = template_runs[i % len(template_runs)]
        seed = 1000 + i
        canonical = canonical_json({**run.canonical, "seed": seed})
        run_id = id_of(canonical)
        target = store.root / run_id
        target.mkdir()
        config = run.config.replace(seed=seed)
        (target / "config.json").write_text(records.json_text(
            {"format": records.FORMAT, "run_id": run_id, "config": config.to_dict(), "canonical": canonical,
             "aliases": []}))
        (target / "history.json").write_text(records.json_text({"run_id": run_id, "epochs": run.history}))
        (target / "metrics.json").write_text(records.json_text(dict(run.metrics, run_id=run_id)))
        predictions, weights = arrays[run.run_id]
        records.save_predictions(target / "predictions.npz", run_id, predictions.probabilities, predictions.labels,
                                 predictions.digits)
        records.save_weights(target / "weights.npz", run_id, run.config.arch, weights)
