"""A standalone HTML report of a comparison, written by Plotly's own HTML writer.

The first chart embeds Plotly's JavaScript, so the file opens offline, anywhere. The
report holds the charts, the summary table, each run's configuration and data source.

Numbers are written for people: integers with thousands separators (``1,199,882``), seconds
to one decimal, accuracies and losses to four; a number a run does not have (a diverged run's
test accuracy) is ``—``, never ``None`` or ``nan``. Two runs with the same label are told
apart by the start of their ids (``label · 3f9a0c``); the full run id is always a column.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from mnistlab import __version__
from mnistlab.runs.config import DEFAULT_FRACTION
from mnistlab.runs.store import Run
from mnistlab.views import charts
from mnistlab.views.text import html_text

SUMMARY_COLUMNS = {
    "label": "run", "test_accuracy": "test accuracy", "test_loss": "test loss",
    "status": "status", "kept_epoch": "kept epoch", "val_accuracy": "val accuracy (kept)",
    "val_loss": "val loss (kept)", "train_seconds": "training s", "train_size": "training images",
    "params": "parameters", "run_id": "run id",
}
#: What a cell shows for a number the run does not have (a diverged run's test accuracy).
MISSING = "—"
#: Characters of the run id shown after a label that two selected runs share.
ID_PREFIX = 6


def _number(value: Any) -> float | None:
    """``value`` as a finite number, or None (None, NaN, infinite, not a number)."""
    if value is None or isinstance(value, (bool, str)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def integer(value: Any) -> str:
    """``1,199,882``; ``—`` when there is no number."""
    number = _number(value)
    return MISSING if number is None else f"{int(round(number)):,}"


def fixed(digits: int) -> Callable[[Any], str]:
    """A formatter to ``digits`` decimals (thousands separated); ``—`` when there is no number."""
    def format_(value: Any) -> str:
        number = _number(value)
        return MISSING if number is None else f"{number:,.{digits}f}"
    return format_


seconds = fixed(1)
#: How each summary column is written (anything else: as text, ``—`` for None).
SUMMARY_FORMATS: dict[str, Callable[[Any], str]] = {
    "test_accuracy": fixed(4), "test_loss": fixed(4), "val_accuracy": fixed(4), "val_loss": fixed(4),
    "kept_epoch": integer, "train_seconds": seconds, "train_size": integer, "params": integer,
}


def _text(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    return str(value)


def run_names(runs: Sequence[Run]) -> dict[str, str]:
    """Each run's name in the report: its label, or ``label · <id prefix>`` where selected runs share
    the label (the prefix grows past ``ID_PREFIX`` characters until it tells them apart)."""
    by_label: dict[str, list[str]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run.run_id)
    names = {}
    for label, ids in by_label.items():
        unique = sorted(set(ids))
        if len(unique) == 1:
            names[unique[0]] = label
            continue
        width = ID_PREFIX
        while width < len(unique[0]) and len({run_id[:width] for run_id in unique}) < len(unique):
            width += 1
        names.update({run_id: f"{label} · {run_id[:width]}" for run_id in unique})
    return names


def smoothing_text(smoothing: float) -> str:
    """The smoothing the charts apply, in words."""
    if not smoothing or smoothing <= 0:
        return "smoothing: none"
    return f"smoothing: exponential moving average, weight {smoothing:g} (raw curves faint)"


def summary_table(runs: Sequence[Run], names: dict[str, str]) -> pd.DataFrame:
    """The summary as text cells, formatted (see SUMMARY_FORMATS), one row per run."""
    rows = []
    for run in runs:
        row = run.summary_row()
        row["label"] = names[run.run_id]
        rows.append({title: SUMMARY_FORMATS.get(key, _text)(row.get(key)) for key, title in SUMMARY_COLUMNS.items()})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS.values()))


def _config_cell(run: Run, key: str, value: Any) -> str:
    """One cell of the configurations table; an unset field says what it means."""
    if value is None:
        if key == "learning_rate":
            return f"default ({run.config.effective_learning_rate:g})"
        if key == "validation_size":
            return {"holdout": "default (one sixth)",
                    "fraction": f"default ({DEFAULT_FRACTION:g})"}.get(run.config.validation, MISSING)
        return {"patience": "none (no early stopping)", "train_size": "all"}.get(key, "default")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}" if value < 1000 or not value.is_integer() else f"{int(value):,}"
    return str(value)


def configurations_table(runs: Sequence[Run], names: dict[str, str]) -> pd.DataFrame:
    rows = []
    for run in runs:
        config = {key: value for key, value in run.config.to_dict().items() if key != "data"}
        rows.append({"run": names[run.run_id], **{key: _config_cell(run, key, value) for key, value in config.items()},
                     "run id": run.run_id})
    return pd.DataFrame(rows)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
"""


def comparison_report(runs: Sequence[Run], title: str | None = None, smoothing: float = 0.0, x: str = "epoch",
                      colors: Mapping[str, str] | None = None, groups: bool = False, band: str = "std",
                      log_y: bool = False, full_range: bool = False) -> str:
    """The whole report as one HTML document: the page's charts (same colours, legend names,
    seed groups, y range), the summary, the seed groups' mean ± std, the configurations."""
    from mnistlab.analysis import comparison

    if not runs:
        raise ValueError("a report needs at least one run")
    title = title or f"mnistlab comparison of {len(runs):,} run{'' if len(runs) == 1 else 's'}"
    colors = dict(colors) if colors else charts.run_colors(r.run_id for r in runs)
    short = comparison.short_names(runs)
    seed_groups = comparison.seed_groups(runs) if groups else []
    if groups:
        lines = charts.group_lines(seed_groups, {g.key: colors.get(g.runs[0].run_id, charts.slot_color(i))
                                                 for i, g in enumerate(seed_groups)}, x=x)
    else:
        lines = charts.run_lines(runs, colors, short)
    panels, ranges = charts.metric_panels(lines, x=x, smoothing=smoothing, log_y=log_y, full_range=full_range,
                                          band=band)
    figures = [panels]
    if len(runs) <= 6 and not groups:
        figures.append(charts.side_by_side(runs, colors, x=x, smoothing=smoothing, names=short))
    plots = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="100%")
             for i, fig in enumerate(figures)]
    keyed = {g.key: g.name for g in seed_groups} if groups else short
    notes = [f"{panel}: {found.note(noun='group' if groups else 'run')} "
             f"({', '.join(keyed.get(k, k) for k in (*found.above, *found.below))}); the report shows the robust "
             "range, as the page does" for panel, found in ranges.items()
             if found is not None and found.clipped and not full_range]

    names = run_names(runs)
    summary = summary_table(runs, names).to_html(index=False, border=0, escape=True)
    group_html = ""
    if groups:
        table = comparison.group_summary(seed_groups)
        group_html = "<h2>Seed groups</h2>" + pd.DataFrame({
            "group": table["name"], "n": table["n"].map(integer),
            "test accuracy (mean ± std)": [comparison.mean_std_text(m, d) for m, d in
                                           zip(table["test_accuracy_mean"], table["test_accuracy_std"])],
            "val accuracy of kept models (mean ± std)": [comparison.mean_std_text(m, d) for m, d in
                                                         zip(table["val_accuracy_mean"], table["val_accuracy_std"])],
        }).to_html(index=False, border=0, escape=True) + (
            f"<p class='muted'>Curves: the mean of each group's finished runs with a band of "
            f"{html_text(charts.BANDS[band])}; std is the sample standard deviation over the seeds.</p>")
    configs = configurations_table(runs, names)
    sources = sorted({f"{r.metrics['data']['title']} ({r.metrics['data']['fingerprint']})" for r in runs})
    data = "; ".join(html_text(source, limit=400) for source in sources)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_text(title, limit=1000)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html_text(title, limit=1000)}</h1>",
        (f"<p class='muted'>{integer(len(runs))} run{'' if len(runs) == 1 else 's'} · data: {data} · "
         f"{html_text(smoothing_text(smoothing))} · made {created} by mnistlab {__version__}</p>"),
        f"<p>{html_text(comparison.shared_caption(runs), limit=2000)}</p>",
        "<h2>Summary</h2>", summary, group_html,
        "<h2>Training histories</h2>",
        "<p class='muted'>Solid: training · dashed: validation · star: the kept epoch. Legend names list only "
        "what differs between the runs.</p>",
        *[f"<p class='muted'>{html_text(note, limit=2000)}</p>" for note in notes], *plots,
        "<h2>Configurations</h2>", configs.to_html(index=False, border=0, na_rep=MISSING, escape=True),
        "</body></html>",
    ])
