"""Plotly figures for runs, confusion matrices, digits and filters. No TensorFlow.

Every function returns a ``plotly.graph_objects.Figure``; the dashboard only draws them.
Colours are per run and given as a mapping, so one run has one colour in every chart.
Text parameters (titles, names) are plain text: this module escapes every one it puts into
a figure with :func:`mnistlab.views.text.html_text` (Plotly reads HTML tags there).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mnistlab.runs.store import Run
from mnistlab.views.text import html_text, plural

#: 20 distinct colours that read on white: Tableau's ten, then ten darker ones of Plotly's Dark24
#: chosen to differ from those (a 21st run reuses the first colour).
PALETTE = list(qualitative.D3) + ["#750D86", "#00A08B", "#FB00D1", "#6C7C32", "#778AAE", "#862A16", "#1616A7",
                                  "#B68100", "#222A2A", "#511CFB"]
METRICS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
}
X_AXES = {"epoch": "epoch", "elapsed": "elapsed seconds"}
LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10), hovermode="x unified")


def _layout(fig: go.Figure, **changes) -> go.Figure:
    """The house style (white template, tight margins) with per-figure changes."""
    fig.update_layout(**{**LAYOUT, **changes})
    return fig


def run_colors(run_ids: Iterable[str]) -> dict[str, str]:
    """One colour per run, in the order given (the same order gives the same colours)."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def smooth(values: Sequence[float], weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    ``weight`` in [0, 1): 0 returns the values unchanged.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight!r}")
    values = np.asarray(values, dtype=float)
    out = np.empty_like(values)
    last, debias = 0.0, 0.0
    for i, value in enumerate(values):
        last = weight * last + (1 - weight) * value
        debias = weight * debias + (1 - weight)
        out[i] = last / debias
    return out


def histories_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """All selected runs' histories in long form: run_id, label, epoch, metrics, seconds."""
    frames = []
    for run in runs:
        frame = run.history_frame()
        frame.insert(0, "label", run.label)
        frame.insert(0, "run_id", run.run_id)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _check_x(x: str) -> None:
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(map(repr, X_AXES))}, got {x!r}")


def _series(history: list[dict], metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(h[x], h[metric]) for h in history if h.get(metric) is not None]
    if not points:
        return np.array([]), np.array([])
    xs, ys = zip(*points)
    return np.asarray(xs, float), np.asarray(ys, float)


def _add_curve(fig, history, metric, x, color, name, smoothing, dash, showlegend, legendgroup, **where):
    xs, ys = _series(history, metric, x)
    if not len(xs):
        return
    name = html_text(name)  # also encodes '%': the name cannot start a %{...} in the hovertemplate
    if smoothing > 0:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, dash=dash, width=1),
                                 opacity=0.25, hoverinfo="skip", showlegend=False, legendgroup=legendgroup), **where)
        ys = smooth(ys, smoothing)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 40 else "lines", name=name,
                             line=dict(color=color, dash=dash), marker=dict(size=5), legendgroup=legendgroup,
                             showlegend=showlegend,
                             hovertemplate=f"{name}: %{{y:.4f}}<extra></extra>"), **where)


def _best_marker(fig, run: Run, x: str, color: str, showlegend: bool, **where):
    """A star on the validation accuracy of the epoch whose weights the run keeps."""
    kept = run.kept_record
    if kept is None or kept.get("val_accuracy") is None:
        return
    fig.add_trace(go.Scatter(x=[kept[x]], y=[kept["val_accuracy"]], mode="markers",
                             marker=dict(symbol="star", size=14, color=color, line=dict(color="black", width=1)),
                             name="kept epoch", legendgroup="best", showlegend=showlegend,
                             hovertemplate=f"kept epoch {html_text(run.kept_epoch)}: val acc %{{y:.4f}}"
                                           "<extra></extra>"), **where)


def _integer_epochs(fig: go.Figure, runs: Sequence[Run], x: str) -> None:
    """Epoch axes tick at whole epochs."""
    if x == "epoch":
        longest = max((len(r.history) for r in runs), default=1)
        fig.update_xaxes(dtick=max(1, longest // 10))


def side_by_side(runs: Sequence[Run], colors: Mapping[str, str] | None = None, x: str = "epoch",
                 smoothing: float = 0.0, names: Mapping[str, str] | None = None) -> go.Figure:
    """One column per run: loss on top, accuracy below; training solid, validation dashed.

    Axes are shared across panels, so the runs compare at a glance. Panel titles are ``names``
    (default: the labels), cut to fit the column so that no title runs into the next.
    """
    _check_x(x)
    colors = colors or run_colors(r.run_id for r in runs)
    names = names or {}
    # Characters a title line holds at font size 12 in the narrowest column the page draws (six runs
    # side by side at a 1024 px wide window: about 85 px); longer titles break at their " · ".
    fit = max(10, 84 // max(len(runs), 1))
    titles = [_title_lines(names.get(r.run_id, r.label), fit) for r in runs]
    fig = make_subplots(rows=2, cols=max(len(runs), 1), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=titles or [""], vertical_spacing=0.08,
                        horizontal_spacing=0.02)
    for col, run in enumerate(runs, start=1):
        color = colors[run.run_id]
        for row, (train_metric, val_metric) in enumerate((("loss", "val_loss"), ("accuracy", "val_accuracy")), 1):
            _add_curve(fig, run.history, train_metric, x, color, "training", smoothing, "solid", False, "training",
                       row=row, col=col)
            _add_curve(fig, run.history, val_metric, x, color, "validation", smoothing, "dash", False,
                       "validation", row=row, col=col)
        _best_marker(fig, run, x, color, False, row=2, col=col)
    for name, dash in (("training", "solid"), ("validation", "dash")):  # legend keys in neutral grey
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=dict(color="#666", dash=dash),
                                 legendgroup=name), row=1, col=1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="kept epoch", legendgroup="best",
                             marker=dict(symbol="star", size=12, color="#bbb", line=dict(color="black", width=1))),
                  row=1, col=1)
    _integer_epochs(fig, runs, x)
    fig.update_xaxes(matches="x")  # one x range for every panel: runs compare at a glance
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=2, col=1)
    fig.update_xaxes(title_text=html_text(X_AXES[x]), row=2)
    fig.update_annotations(font_size=12)
    top = 40 + 16 * max((t.count("<br>") + 1 for t in titles), default=1)  # the legend, then the titles' lines
    _layout(fig, height=470 + top, margin=dict(l=10, r=10, t=top, b=10), hovermode="closest",
            legend=dict(orientation="h", yref="container", y=1, yanchor="top", x=0))
    return fig


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _title_lines(text: str, width: int, lines: int = 2) -> str:
    """``text`` broken at its " · " into at most ``lines`` lines of at most ``width`` characters
    (the last one cut with "…"), each escaped, joined with ``<br>``: a panel title."""
    out: list[str] = []
    for part in text.split(" · "):
        if out and len(out[-1]) + 3 + len(part) <= width:
            out[-1] += " · " + part
        else:
            out.append(part)
    if len(out) > lines:
        out = out[:lines - 1] + [" · ".join(out[lines - 1:])]
    return "<br>".join(html_text(_cut(line, width)) for line in out)


def overlay(runs: Sequence[Run], metric: str, colors: Mapping[str, str] | None = None, x: str = "epoch",
            smoothing: float = 0.0) -> go.Figure:
    """One metric, every run in its colour."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
    _check_x(x)
    colors = colors or run_colors(r.run_id for r in runs)
    fig = go.Figure()
    for run in runs:
        _add_curve(fig, run.history, metric, x, colors[run.run_id], run.label, smoothing, "solid", True, run.run_id)
        if metric == "val_accuracy":
            _best_marker(fig, run, x, colors[run.run_id], False)
    _integer_epochs(fig, runs, x)
    _layout(fig, height=380, title=html_text(METRICS[metric]), xaxis_title=html_text(X_AXES[x]),
            yaxis_title=html_text(metric), legend=dict(orientation="h", y=-0.25, x=0))
    return fig


# -- comparing many runs: one panel per metric -------------------------------------------
PANELS = {"loss": ("loss", "val_loss"), "accuracy": ("accuracy", "val_accuracy")}
BANDS = {"std": "mean ± 1 std", "minmax": "min–max"}
PANEL_HEIGHT = 420  # pixels of plot area per panel (≥ 380 readable)
WEBGL_ABOVE = 40  # lines: above this many, traces are WebGL (scattergl) so the browser stays responsive


def assign_slots(selected: Sequence[str], previous: Mapping[str, int] | None = None) -> dict[str, int]:
    """Palette slots for the selected runs, in selection order: a run keeps its slot while it stays
    selected, a newly selected run takes the lowest free one (colour = ``PALETTE[slot % 20]``)."""
    previous = previous or {}
    slots = {run_id: previous[run_id] for run_id in selected if run_id in previous}
    used = set(slots.values())
    free = (slot for slot in range(len(selected) + len(used) + 1) if slot not in used)
    for run_id in selected:
        if run_id not in slots:
            slots[run_id] = next(free)
    return {run_id: slots[run_id] for run_id in selected}


def slot_color(slot: int) -> str:
    return PALETTE[slot % len(PALETTE)]


@dataclasses.dataclass(frozen=True)
class Line:
    """What one legend entry of :func:`metric_panels` draws: a run, or a seed group's mean with a band.

    ``name`` is the short legend name, ``hover`` the full one (both plain text). A run has its
    ``history`` and its kept epoch's record (``kept``: the star); a group has ``curves``: per
    metric a frame with columns x, mean, std, min, max, n (see ``analysis.comparison.group_curve``).
    """

    key: str
    name: str
    hover: str
    color: str
    history: Sequence[Mapping] = ()
    kept: Mapping | None = None
    curves: Mapping[str, pd.DataFrame] | None = None
    legend: str | None = None  # a shared legend heading (colour by a parameter: "optimizer = adam")

    def points(self, metric: str, x: str, band: str = "std"):
        """(xs, ys, lower, upper): the band is None for a run."""
        if self.curves is None:
            xs, ys = _series(list(self.history), metric, x)
            return xs, ys, None, None
        frame = self.curves[metric]
        mean = frame["mean"].to_numpy(float)
        if band == "minmax":
            lower, upper = frame["min"].to_numpy(float), frame["max"].to_numpy(float)
        else:
            spread = np.nan_to_num(frame["std"].to_numpy(float))
            lower, upper = mean - spread, mean + spread
        return frame["x"].to_numpy(float), mean, lower, upper


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def metric_panels(lines: Sequence[Line], *, x: str = "epoch", smoothing: float = 0.0, log_y: bool = False,
                  full_range: bool = False, band: str = "std", panels: Sequence[str] = tuple(PANELS)):
    """One panel per metric (loss, accuracy), each overlaying every line: training solid,
    validation dashed, on a shared x-axis; hover names the run, the epoch and the value.

    The y range of each panel is robust (outlier curves do not flatten the others) unless
    ``full_range``; ``log_y`` puts the loss panel on a log scale. Smoothing draws the smoothed
    curve over the faint raw one in the same colour; the kept epoch's star sits on the drawn
    validation-accuracy curve. Returns ``(figure, ranges)``: per panel its
    :class:`~mnistlab.analysis.comparison.RobustRange` (to say which curves it leaves out).
    """
    from mnistlab.analysis.comparison import robust_range

    _check_x(x)
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(map(repr, BANDS))}, got {band!r}")
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise ValueError(f"panels must be among {', '.join(map(repr, PANELS))}, got {unknown!r}")
    many = len(lines) > WEBGL_ABOVE
    trace = go.Scattergl if many else go.Scatter
    rows = len(panels)
    spacing = 0.1 / max(rows - 1, 1) if rows > 1 else 0.0
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=spacing)
    ranges = {}
    x_format = "%{x}" if x == "epoch" else "%{x:.1f} s"
    x_word = "epoch " if x == "epoch" else ""
    for row, panel in enumerate(panels, start=1):
        log = log_y and panel == "loss"
        drawn: dict[str, list] = {}
        titled: set[str] = set()
        for line in lines:
            name, hover = html_text(line.name, limit=120), html_text(line.hover, limit=300)
            group = line.legend or line.key
            for metric, dash in zip(PANELS[panel], ("solid", "dash")):
                xs, ys, lower, upper = line.points(metric, x, band)
                if not len(xs):
                    continue
                split = "training" if dash == "solid" else "validation"
                common = dict(legendgroup=group, showlegend=False)
                if lower is not None:
                    fig.add_trace(trace(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([upper, lower[::-1]]),
                                        fill="toself", fillcolor=_rgba(line.color, 0.12), line=dict(width=0),
                                        hoverinfo="skip", mode="lines", **common), row=row, col=1)
                    drawn.setdefault(line.key, []).extend([*upper, *lower])
                if smoothing > 0:
                    fig.add_trace(trace(x=xs, y=ys, mode="lines", line=dict(color=line.color, dash=dash, width=1),
                                        opacity=0.25, hoverinfo="skip", **common), row=row, col=1)
                    ys = smooth(ys, smoothing)
                drawn.setdefault(line.key, []).extend(ys)
                show = row == 1 and dash == "solid"
                heading = {}
                if show and line.legend and group not in titled:
                    titled.add(group)
                    heading = dict(legendgrouptitle_text=html_text(line.legend, limit=120))
                fig.add_trace(trace(**heading,
                    x=xs, y=ys, mode="lines+markers" if len(xs) < 40 and not many else "lines", name=name,
                    line=dict(color=line.color, dash=dash, width=2 if not many else 1.5), marker=dict(size=4),
                    legendgroup=group, showlegend=show,
                    hovertemplate=f"<b>{name}</b> · {split}<br>{x_word}{x_format}: %{{y:.4f}}<br>"
                                  f"<span style='font-size:10px'>{hover}</span><extra></extra>"), row=row, col=1)
                if (metric == "val_accuracy" and not many and line.kept is not None
                        and line.kept.get(metric) is not None):  # stars only while they can be told apart
                    at = np.flatnonzero(xs == float(line.kept[x])) if line.kept.get(x) is not None else []
                    if len(at):
                        fig.add_trace(trace(
                            x=[xs[at[0]]], y=[ys[at[0]]], mode="markers", legendgroup=group, showlegend=False,
                            marker=dict(symbol="star", size=13, color=line.color, line=dict(color="black", width=1)),
                            hovertemplate=f"<b>{name}</b><br>kept epoch {html_text(line.kept.get('epoch'))}: "
                                          "val acc %{y:.4f}<extra></extra>"), row=row, col=1)
        found = robust_range({key: np.asarray(values, float) for key, values in drawn.items()}, log=log)
        ranges[panel] = found
        axis = dict(title_text=f"{panel} (log)" if log else panel, type="log" if log else "linear")
        if not full_range and found is not None:
            axis["range"] = found.plotly_range(log)
        fig.update_yaxes(row=row, col=1, **axis)
    for name, dash in (("training", "solid"), ("validation", "dash")):  # what solid and dashed mean
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=dict(color="#666", dash=dash),
                                 legendgroup=f"key-{name}", legendrank=2000), row=1, col=1)
    if x == "epoch":
        longest = max((len(line.points(PANELS[panels[0]][0], x, band)[0]) for line in lines), default=1)
        fig.update_xaxes(dtick=max(1, longest // 10))
    fig.update_xaxes(title_text=html_text(X_AXES[x]), row=rows, col=1)
    height = rows * PANEL_HEIGHT + (rows - 1) * 40 + 90
    _layout(fig, height=height, hovermode="closest", margin=dict(l=10, r=10, t=30, b=50),
            legend=dict(orientation="v", x=1.01, y=1, yanchor="top", font=dict(size=11), groupclick="togglegroup",
                        title=dict(text="groups" if any(line.curves is not None for line in lines) else "runs")))
    return fig, ranges


def run_lines(runs: Sequence[Run], colors: Mapping[str, str], names: Mapping[str, str] | None = None,
              legends: Mapping[str, str] | None = None) -> list[Line]:
    """One :class:`Line` per run: its legend name (default: its label), full label on hover;
    ``legends``: a legend heading per run id (runs coloured by a parameter)."""
    names, legends = names or {}, legends or {}
    return [Line(run.run_id, names.get(run.run_id, run.label), f"{run.label} · {run.run_id[:6]}", colors[run.run_id],
                 history=run.history, kept=run.kept_record, legend=legends.get(run.run_id)) for run in runs]


def group_lines(groups, colors: Mapping[str, str], x: str = "epoch",
                legends: Mapping[str, str] | None = None) -> list[Line]:
    """One :class:`Line` per seed group (its mean and band); ``colors`` and ``legends`` by group key.

    The curves average the group's finished runs: a diverged seed (a loss of thousands, then
    nothing) would make the mean meaningless, so it is left out and the hover says so."""
    from mnistlab.analysis.comparison import group_curve

    legends = legends or {}
    lines = []
    for group in groups:
        finished = [r for r in group.runs if r.is_finished] or list(group.runs)
        curves = {metric: group_curve(finished, metric, x) for metric in METRICS}
        hover = f"{group.runs[0].config.replace(seed=0).label()} · mean of {plural(len(finished), 'seed')}"
        if len(finished) < group.n:
            hover += f"; {plural(group.n - len(finished), 'diverged seed')} left out"
        lines.append(Line(group.key, group.name, hover, colors[group.key], curves=curves,
                          legend=legends.get(group.key)))
    return lines


#: Parallel coordinates: how each configuration field shows as an axis.
_AXIS_NAMES = {"task": "task", "arch": "architecture", "epochs": "epochs", "batch_size": "batch size",
               "optimizer": "optimizer", "learning_rate": "learning rate (log10)", "validation": "validation",
               "validation_size": "validation size", "train_size": "fit images", "patience": "patience",
               "seed": "seed", "precision": "precision"}


def parallel_coordinates(frame: pd.DataFrame, fields: Sequence[str], target: str = "val_accuracy",
                         target_name: str = "val accuracy") -> go.Figure:
    """One line per run through the hyperparameters that vary, coloured by ``target``.

    Text columns become axes of their values (ticks named); the learning rate is drawn on a
    log10 axis. Rows without a target (diverged runs) are left out: the caller says so.
    """
    rows = frame[pd.to_numeric(frame[target], errors="coerce").notna()]
    dimensions = []
    for field in fields:
        values = rows[field]
        label = html_text(_AXIS_NAMES.get(field, field))
        numeric = pd.to_numeric(values, errors="coerce")
        if values.notna().all() and numeric.notna().all():
            numbers = np.log10(numeric.astype(float)) if field == "learning_rate" else numeric.astype(float)
            dimensions.append(dict(label=label, values=numbers))
        else:  # categories (None is one of them: 'none')
            text = values.map(lambda v: "none" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            categories = sorted(text.unique(), key=_category_order)
            codes = text.map({c: i for i, c in enumerate(categories)})
            dimensions.append(dict(label=label, values=codes, tickvals=list(range(len(categories))),
                                   ticktext=[html_text(c, limit=30) for c in categories]))
    score = rows[target].astype(float)
    dimensions.append(dict(label=html_text(target_name), values=score))
    fig = go.Figure(go.Parcoords(
        line=dict(color=score, colorscale="Viridis", showscale=False),  # the last axis is the colour's key
        dimensions=dimensions, labelangle=0, labelside="top"))
    _layout(fig, height=420, margin=dict(l=60, r=40, t=70, b=30), hovermode=False)
    return fig


def _category_order(value: str) -> tuple:
    """Numbers in numeric order first, then words in alphabetical order."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def importance_bars(fields: Sequence[str], values: Sequence[float], stds: Sequence[float],
                    title: str = "What mattered") -> go.Figure:
    """Permutation importances as horizontal bars (largest on top) with their spread over folds."""
    order = np.argsort(values)
    names = [html_text(_AXIS_NAMES.get(fields[i], fields[i])) for i in order]
    fig = go.Figure(go.Bar(x=[values[i] for i in order], y=names, orientation="h", marker_color="#1f77b4",
                           error_x=dict(type="data", array=[stds[i] for i in order], color="#888", thickness=1),
                           hovertemplate="%{y}: %{x:.4f} drop in R²<extra></extra>"))
    _layout(fig, height=90 + 34 * len(fields), hovermode="closest", title=dict(text=html_text(title), font_size=13),
            xaxis=dict(title="drop in R² when shuffled"), margin=dict(l=10, r=10, t=40, b=40))
    return fig


class Curves:
    """What :func:`side_by_side` reads of a run, for one still training (no kept epoch yet)."""

    kept_epoch = None
    kept_record = None

    def __init__(self, run_id: str, label: str, history: list[dict]):
        self.run_id, self.label, self.history = run_id, label, history


def epoch_axis(fig: go.Figure, epochs_total: int) -> go.Figure:
    """An epoch x-axis that already spans every planned epoch (the same while training and after)."""
    total = max(int(epochs_total), 1)
    fig.update_xaxes(range=[0.5, total + 0.5], dtick=max(1, round(total / 10)))
    return fig


def live_history(history: list[dict], epochs_total: int, title: str = "", run_id: str = "live",
                 color: str | None = None) -> go.Figure:
    """The curves of a run in training: :func:`side_by_side`'s chart of that one run (same colours,
    axes and legend as when it has finished), on an x-axis that already spans every epoch."""
    fig = side_by_side([Curves(run_id, title, history)], {run_id: color or PALETTE[0]})
    return epoch_axis(fig, epochs_total)


def _cell_picker(matrix: pd.DataFrame, fmt: str) -> go.Scatter:
    """Transparent markers on every cell, so a click on a cell selects (true, predicted).

    They carry the hover text too: a trace with hover switched off would not get clicks.
    """
    rows, cols = np.meshgrid(np.arange(len(matrix.index)), np.arange(len(matrix.columns)), indexing="ij")
    values = matrix.to_numpy()[rows.ravel(), cols.ravel()]
    return go.Scatter(
        x=[matrix.columns[c] for c in cols.ravel()], y=[matrix.index[r] for r in rows.ravel()], mode="markers",
        marker=dict(size=30, color="rgba(0,0,0,0)", symbol="square"),
        customdata=np.stack([rows.ravel(), cols.ravel(), values], 1),
        hovertemplate=f"true %{{y}}, predicted %{{x}}: %{{customdata[2]:{fmt}}}<extra>click to see them</extra>",
        showlegend=False, name="cells")


def confusion_heatmap(matrix: pd.DataFrame, normalized: bool = False, title: str = "",
                      selectable: bool = False) -> go.Figure:
    """Rows true, columns predicted, with the numbers in the cells.

    ``selectable`` adds a transparent layer whose points carry (true, predicted) indices
    in ``customdata``, for click-to-select in the dashboard.
    """
    fmt = ".2f" if normalized else "d"
    z = matrix.to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=list(matrix.columns), y=list(matrix.index), colorscale="Blues", texttemplate=f"%{{z:{fmt}}}",
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", showscale=False))
    if selectable:
        fig.data[0].hoverinfo = "skip"
        fig.add_trace(_cell_picker(matrix, fmt))
    _layout(fig, hovermode="closest", title=html_text(title), height=460,
                      xaxis=dict(title="predicted", type="category", side="top"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig


def difference_heatmap(diff: pd.DataFrame, title: str = "") -> go.Figure:
    """Second run minus first: blue where it has more, red where fewer (diagonal: more is better)."""
    z = diff.to_numpy()
    bound = max(1, int(np.abs(z).max()))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(diff.columns), y=list(diff.index), colorscale="RdBu", zmin=-bound, zmax=bound,
        texttemplate="%{z:+d}", hovertemplate="true %{y}, predicted %{x}: %{z:+d}<extra></extra>"))
    _layout(fig, hovermode="closest", title=html_text(title), height=460,
                      xaxis=dict(title="predicted", type="category", side="top"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig


def matrix_heatmap(values: np.ndarray, title: str = "", colorscale: str = "gray", fmt: str = ".2f",
                   show_values: bool = False, zmid: float | None = None, height: int = 320,
                   hide_zeros: bool = False, zmin: float | None = None, zmax: float | None = None,
                   showscale: bool = False) -> go.Figure:
    """A 2-D array as a square heatmap (row 0 at the top), its values on hover.

    ``show_values`` writes them in the cells too (``hide_zeros`` leaves zero cells blank; a value
    that rounds to zero never shows as ``-0``). ``zmin``/``zmax`` fix the colour scale (default:
    the values' own range); ``showscale`` draws the colour bar.
    """
    values = np.asarray(values, dtype=float)
    trace = go.Heatmap(z=values, colorscale=colorscale, zmid=zmid, showscale=showscale, zmin=zmin, zmax=zmax,
                       hovertemplate=f"row %{{y}}, col %{{x}}: %{{z:{fmt}}}<extra></extra>")
    if showscale:
        trace.update(colorbar=dict(thickness=10, len=0.8, tickfont=dict(size=10)))
    if show_values:
        text = np.vectorize(lambda v: "" if hide_zeros and v == 0 else _number_text(v, fmt))(values)
        trace.update(text=text, texttemplate="%{text}", textfont=dict(size=9))
    fig = go.Figure(trace)
    _layout(fig, hovermode="closest", title=html_text(title), height=height,
                      margin=dict(l=5, r=5, t=40, b=5))
    # the square under its title: where the chart is taller than wide, the spare height goes below, not above
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", constraintoward="top",
                     showticklabels=False)
    fig.update_xaxes(constrain="domain", showticklabels=False)
    return fig


def _number_text(value: float, fmt: str) -> str:
    """``format(value, fmt)`` without a minus on a value that rounds to zero (no "-0.00")."""
    text = format(value, fmt)
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str], cols: int = 5, colorscale: str = "gray_r",
               symmetric: bool = False, cell_height: int = 150) -> go.Figure:
    """Small images in a grid of heatmaps with titles: digits, kernels, feature maps.

    ``symmetric`` centres the colour scale of each image on zero (for kernels).
    """
    n = len(images)
    rows = max(1, -(-n // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[html_text(t) for t in titles], horizontal_spacing=0.015,
                        vertical_spacing=0.3 / rows)
    for i, image in enumerate(images):
        image = np.asarray(image, dtype=float)
        bound = float(np.abs(image).max()) or 1.0
        fig.add_trace(go.Heatmap(z=image, colorscale=colorscale, showscale=False,
                                 zmin=-bound if symmetric else None, zmax=bound if symmetric else None,
                                 hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor=None)
    fig.update_xaxes(showticklabels=False)
    fig.update_annotations(font_size=11)
    _layout(fig, hovermode="closest", height=cell_height * rows + 40,
                      margin=dict(l=5, r=5, t=30, b=5))
    return fig


def image_pixels(image: np.ndarray, colorscale: str = "gray_r", symmetric: bool = False, zoom: int = 1,
                 bounds: tuple[float, float] | None = None) -> np.ndarray:
    """A 2-D array as an RGB picture (``uint8``, height x width x 3) coloured as :func:`image_grid`
    colours it (``symmetric``: the scale centred on zero, for kernels; ``bounds``: the values at the
    scale's two ends, given), each value ``zoom`` x ``zoom`` pixels wide so a small image stays sharp
    when shown larger. For ``st.image`` grids: a picture costs the browser almost nothing to draw,
    where a grid of heatmaps costs it seconds."""
    image = np.asarray(image, dtype=float)
    if bounds is not None:
        low, high = float(bounds[0]), float(bounds[1])
        if not high > low:
            raise ValueError(f"bounds must rise: got {bounds!r}")
    elif symmetric:
        bound = float(np.abs(image).max()) or 1.0
        low, high = -bound, bound
    else:
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        if high <= low:
            high = low + 1.0
    steps = np.clip(np.nan_to_num((image - low) / (high - low)), 0.0, 1.0)
    if colorscale in ("gray", "gray_r"):  # exact: white is 255, black 0
        level = np.round(255.0 * (1.0 - steps if colorscale == "gray_r" else steps)).astype(np.uint8)
        pixels = np.repeat(level[:, :, None], 3, axis=2)
    else:
        lut = _colour_table(colorscale)
        pixels = lut[np.round(steps * (len(lut) - 1)).astype(int)]
    if zoom > 1:
        pixels = pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)
    return pixels


def png_url(pixels: np.ndarray) -> str:
    """A ``uint8`` picture (height x width, or x 3 for RGB) as a PNG in a ``data:`` URL, for
    ``st.image``: sent inside the page (an array given to ``st.image`` becomes a file the browser
    asks for, one request each)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_url(image: np.ndarray, colorscale: str = "gray_r", symmetric: bool = False, zoom: int = 1,
                bounds: tuple[float, float] | None = None) -> str:
    """:func:`image_pixels` as a PNG ``data:`` URL (:func:`png_url`)."""
    return png_url(image_pixels(image, colorscale, symmetric=symmetric, zoom=zoom, bounds=bounds))


_COLOUR_TABLES: dict[str, np.ndarray] = {}


def _colour_table(colorscale: str) -> np.ndarray:
    """256 RGB colours of a Plotly colour scale (``_r``: reversed), made once."""
    table = _COLOUR_TABLES.get(colorscale)
    if table is None:
        from plotly.colors import get_colorscale, sample_colorscale

        reverse = colorscale.endswith("_r")
        scale = get_colorscale(colorscale[:-2] if reverse else colorscale)
        points = np.linspace(0.0, 1.0, 256)
        colours = sample_colorscale(scale, list(points[::-1] if reverse else points), colortype="tuple")
        table = np.clip(np.round(np.asarray(colours, dtype=float) * 255.0), 0, 255).astype(np.uint8)
        _COLOUR_TABLES[colorscale] = table
    return table


# -- looking inside the models (Playground, Inspect's epochs and statistics) ----------------
WIN_COLOR = "#d62728"
BAR_COLOR = "#9bb7d4"


def probability_bars(probabilities: Sequence[float], class_names: Sequence[str], title: str = "",
                     height: int = 220, flagged: bool = False) -> go.Figure:
    """One run's predicted probabilities as bars, the winning class in red; ``flagged`` marks a dissenter."""
    p = np.asarray(probabilities, dtype=float)
    winner = int(p.argmax())
    colors = [WIN_COLOR if i == winner else BAR_COLOR for i in range(len(p))]
    fig = go.Figure(go.Bar(x=[html_text(c) for c in class_names], y=p, marker_color=colors,
                           text=[f"{v:.0%}" if i == winner else "" for i, v in enumerate(p)], textposition="outside",
                           cliponaxis=False, hovertemplate="class %{x}: %{y:.2%}<extra></extra>"))
    _layout(fig, height=height, hovermode="closest", title=dict(text=html_text(title), font_size=12),
            margin=dict(l=5, r=5, t=45, b=5), yaxis=dict(range=[0, 1.12], tickformat=".0%", showticklabels=False),
            xaxis=dict(type="category"), plot_bgcolor="#fff3f3" if flagged else None)
    return fig


def activation_bars(values: Sequence[float], title: str = "", height: int = 160) -> go.Figure:
    """A Dense layer's activations for one digit, one thin bar per unit."""
    v = np.asarray(values, dtype=float).ravel()
    fig = go.Figure(go.Bar(x=np.arange(len(v)), y=v, marker_color="#1f77b4", marker_line_width=0,
                           hovertemplate="unit %{x}: %{y:.3f}<extra></extra>"))
    _layout(fig, height=height, hovermode="closest", title=dict(text=html_text(title), font_size=12),
            margin=dict(l=5, r=5, t=35, b=5), bargap=0, xaxis=dict(showticklabels=False))
    return fig


def reliability_diagram(table: pd.DataFrame, ece: float, title: str = "", color: str = "#1f77b4") -> go.Figure:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    filled = table[table["count"] > 0]
    centres = (filled["lower"] + filled["upper"]) / 2
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#999", dash="dot"),
                             name="perfectly calibrated", hoverinfo="skip"))
    fig.add_trace(go.Bar(x=centres, y=filled["accuracy"], width=(filled["upper"] - filled["lower"]) * 0.9,
                         marker_color=color, opacity=0.75, name="accuracy in bin", customdata=np.stack(
                             [filled["confidence"], filled["count"]], axis=1),
                         hovertemplate="confidence %{customdata[0]:.3f}: accuracy %{y:.3f} "
                                       "(%{customdata[1]:d} digits)<extra></extra>"))
    _layout(fig, height=300, hovermode="closest", title=dict(text=f"{html_text(title)} · ECE {ece:.4f}", font_size=12),
            xaxis=dict(title="confidence", range=[0, 1]), yaxis=dict(title="accuracy", range=[0, 1]),
            legend=dict(orientation="h", y=-0.3, x=0), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def confidence_histogram(hist: pd.DataFrame, title: str = "") -> go.Figure:
    """How confident the right and the wrong predictions were (log count axis)."""
    centres = (hist["lower"] + hist["upper"]) / 2
    width = float((hist["upper"] - hist["lower"]).iloc[0]) if len(hist) else 0.05
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centres, y=hist["right"], width=width, name="right", marker_color="#2ca02c", opacity=0.7,
                         hovertemplate="confidence ≈ %{x:.2f}: %{y} right<extra></extra>"))
    fig.add_trace(go.Bar(x=centres, y=hist["wrong"], width=width, name="wrong", marker_color=WIN_COLOR, opacity=0.7,
                         hovertemplate="confidence ≈ %{x:.2f}: %{y} wrong<extra></extra>"))
    _layout(fig, height=300, hovermode="closest", barmode="overlay", title=dict(text=html_text(title), font_size=12),
            xaxis=dict(title="confidence of the predicted class", range=[0, 1]),
            yaxis=dict(title="digits (log)", type="log"), legend=dict(orientation="h", y=-0.3, x=0),
            margin=dict(l=10, r=10, t=40, b=10))
    return fig


def epoch_accuracy_curves(curves: pd.DataFrame, kept_epoch: int | None = None, current: int | None = None) -> go.Figure:
    """Test accuracy per digit over the epochs (one line per digit, overall in black)."""
    fig = go.Figure()
    for i, column in enumerate(curves.columns):
        overall = column == "all"
        fig.add_trace(go.Scatter(x=curves.index, y=curves[column], mode="lines+markers" if len(curves) < 40 else "lines",
                                 name="all digits" if overall else f"digit {html_text(column)}",
                                 line=dict(color="black" if overall else PALETTE[i % len(PALETTE)],
                                           width=3 if overall else 1.5), marker=dict(size=4)))
    if current is not None:
        fig.add_vline(x=current, line=dict(color="#888", dash="dot"))
    if kept_epoch is not None:
        fig.add_vline(x=kept_epoch, line=dict(color=WIN_COLOR, width=1), annotation_text="kept",
                      annotation_position="bottom right")
    _layout(fig, height=340, title=dict(text="Test accuracy per digit over the epochs", font_size=13),
            xaxis=dict(title="epoch", dtick=max(1, len(curves) // 10)), yaxis=dict(title="accuracy", tickformat=".0%"),
            legend=dict(orientation="h", y=-0.25, x=0))
    return fig


def robustness_curves(curves: Mapping[str, pd.DataFrame], labels: Mapping[str, str],
                      colors: Mapping[str, str] | None = None, titles: Mapping[str, str] | None = None) -> go.Figure:
    """Accuracy as digits are shifted, rotated, noised: one panel per perturbation, one line per run."""
    kinds = list(titles) if titles else ["shift", "rotation", "noise"]
    colors = colors or run_colors(curves)
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[html_text((titles or {}).get(k, k)) for k in kinds])
    for run_id, frame in curves.items():
        for col, kind in enumerate(kinds, start=1):
            part = frame[frame["perturbation"] == kind]
            fig.add_trace(go.Scatter(x=part["level"], y=part["accuracy"], mode="lines+markers",
                                     name=html_text(labels.get(run_id, run_id)), legendgroup=run_id,
                                     showlegend=col == 1, line=dict(color=colors.get(run_id)),
                                     hovertemplate="%{x}: %{y:.1%}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_annotations(font_size=12)
    _layout(fig, height=340, hovermode="closest", legend=dict(orientation="h", y=-0.2, x=0))
    return fig
