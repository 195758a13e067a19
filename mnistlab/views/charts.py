"""Plotly figures for runs, confusion matrices, digits and filters. No TensorFlow.

Every function returns a ``plotly.graph_objects.Figure``; the dashboard only draws them.
Colours are per run and given as a mapping, so one run has one colour in every chart.
Text parameters (titles, names) are plain text: this module escapes every one it puts into
a figure with :func:`mnistlab.views.text.html_text` (Plotly reads HTML tags there).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from mnistlab.runs.store import Run
from mnistlab.views.text import html_text

PALETTE = qualitative.Plotly + qualitative.D3
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
                 smoothing: float = 0.0) -> go.Figure:
    """One column per run: loss on top, accuracy below; training solid, validation dashed.

    Axes are shared across panels, so the runs compare at a glance.
    """
    _check_x(x)
    colors = colors or run_colors(r.run_id for r in runs)
    fig = make_subplots(rows=2, cols=max(len(runs), 1), shared_xaxes=True, shared_yaxes=True,
                        subplot_titles=[html_text(r.label) for r in runs] or [""], vertical_spacing=0.08,
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
    _layout(fig, height=520, legend=dict(orientation="h", y=1.12, x=0), hovermode="closest")
    return fig


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


def live_history(history: list[dict], epochs_total: int, title: str = "") -> go.Figure:
    """The curves of a run in training, on an x-axis that already spans every epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "accuracy"], horizontal_spacing=0.08)
    for col, metrics in enumerate((("loss", "val_loss"), ("accuracy", "val_accuracy")), start=1):
        for metric, dash in zip(metrics, ("solid", "dash")):
            xs, ys = _series(history, metric, "epoch")
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=METRICS[metric],
                                     line=dict(color=PALETTE[0] if col == 1 else PALETTE[1], dash=dash),
                                     showlegend=True), row=1, col=col)
    fig.update_xaxes(range=[0.5, max(epochs_total, 1) + 0.5], title_text="epoch")
    _layout(fig, height=300, title=html_text(title), legend=dict(orientation="h", y=-0.3, x=0))
    return fig


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
                   hide_zeros: bool = False) -> go.Figure:
    """A 2-D array as a square heatmap (row 0 at the top), its values on hover.

    ``show_values`` writes them in the cells too (``hide_zeros`` leaves zero cells blank).
    """
    values = np.asarray(values, dtype=float)
    trace = go.Heatmap(z=values, colorscale=colorscale, zmid=zmid, showscale=False,
                       hovertemplate=f"row %{{y}}, col %{{x}}: %{{z:{fmt}}}<extra></extra>")
    if show_values:
        text = np.vectorize(lambda v: "" if hide_zeros and v == 0 else format(v, fmt))(values)
        trace.update(text=text, texttemplate="%{text}", textfont=dict(size=9))
    fig = go.Figure(trace)
    _layout(fig, hovermode="closest", title=html_text(title), height=height,
                      margin=dict(l=5, r=5, t=40, b=5))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showticklabels=False)
    fig.update_xaxes(constrain="domain", showticklabels=False)
    return fig


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
