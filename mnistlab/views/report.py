"""A standalone HTML report of a comparison, written by Plotly's own HTML writer.

The first chart embeds Plotly's JavaScript, so the file opens offline, anywhere. The
report holds the charts, the summary table, each run's configuration and data source.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import pandas as pd

from mnistlab import __version__
from mnistlab.runs.store import Run
from mnistlab.views import charts
from mnistlab.views.text import html_text

SUMMARY_COLUMNS = {
    "label": "run", "test_accuracy": "test accuracy", "test_loss": "test loss",
    "status": "status", "kept_epoch": "kept epoch", "val_accuracy": "val accuracy (kept)",
    "val_loss": "val loss (kept)", "train_seconds": "training s", "params": "parameters", "run_id": "run id",
}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
"""


def comparison_report(runs: Sequence[Run], title: str | None = None, smoothing: float = 0.0,
                      x: str = "epoch") -> str:
    """The whole report as one HTML document."""
    if not runs:
        raise ValueError("a report needs at least one run")
    title = title or "mnistlab comparison: " + " vs ".join(r.config.arch for r in runs)
    colors = charts.run_colors(r.run_id for r in runs)
    figures = [charts.side_by_side(runs, colors, x=x, smoothing=smoothing),
               charts.overlay(runs, "val_accuracy", colors, x=x, smoothing=smoothing),
               charts.overlay(runs, "val_loss", colors, x=x, smoothing=smoothing)]
    plots = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="100%")
             for i, fig in enumerate(figures)]

    table = pd.DataFrame([r.summary_row() for r in runs])[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS)
    summary = table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, escape=True)
    configs = pd.DataFrame([{**r.config.to_dict(), "run id": r.run_id} for r in runs]).drop(columns=["data"])
    sources = sorted({f"{r.metrics['data']['title']} ({r.metrics['data']['fingerprint']})" for r in runs})
    data = "; ".join(html_text(source, limit=400) for source in sources)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_text(title, limit=1000)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html_text(title, limit=1000)}</h1>",
        f"<p class='muted'>{len(runs)} runs · data: {data} · made {created} "
        f"by mnistlab {__version__}</p>",
        "<h2>Summary</h2>", summary,
        "<h2>Training histories</h2>", *plots,
        "<h2>Configurations</h2>", configs.to_html(index=False, border=0, na_rep="default", escape=True),
        "</body></html>",
    ])
