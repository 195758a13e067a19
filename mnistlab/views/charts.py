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
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", showticklabels=False)
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
