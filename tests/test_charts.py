import numpy as np
import pytest

from mnistlab.analysis.evaluation import confusion_difference, confusion_matrix
from mnistlab.views import charts


def test_smoothing_keeps_constant_curves_and_damps_noise():
    np.testing.assert_allclose(charts.smooth([2.0, 2.0, 2.0], 0.8), [2.0, 2.0, 2.0])
    noisy = np.array([0.0, 1.0] * 10)
    assert charts.smooth(noisy, 0.9)[5:].std() < noisy.std() / 3
    np.testing.assert_array_equal(charts.smooth(noisy, 0.0), noisy)
    with pytest.raises(ValueError, match="smoothing weight must be in \\[0, 1\\)"):
        charts.smooth(noisy, 1.0)


def test_run_colours_are_distinct_and_stable():
    colors = charts.run_colors(["a", "b", "c"])
    assert len(set(colors.values())) == 3
    assert charts.run_colors(["a", "b", "c"]) == colors


def test_side_by_side_has_one_panel_per_run_and_marks_the_kept_epoch(trained_store):
    _, runs = trained_store
    selected = [runs["mlp"], runs["cnn"]]
    colors = charts.run_colors(r.run_id for r in selected)
    fig = charts.side_by_side(selected, colors)
    titles = [a.text.replace("<br>", " · ") for a in fig.layout.annotations]
    assert titles == [r.label for r in selected]
    curves = [t for t in fig.data if t.name in ("training", "validation") and t.x[0] is not None]
    assert len(curves) == 2 * 2 * 2  # runs x (loss, accuracy) x (training, validation)
    assert {t.line.color for t in curves} == set(colors.values())
    legend = [t.name for t in fig.data if t.showlegend is not False and t.x[0] is None]
    assert legend == ["training", "validation", "kept epoch"]
    stars = [t for t in fig.data if t.name == "kept epoch" and t.x[0] is not None]
    assert [(t.x[0], t.y[0]) for t in stars] == [(r.kept_epoch, r.kept_record["val_accuracy"]) for r in selected]


def test_smoothing_draws_the_raw_curve_faintly_behind(trained_store):
    _, runs = trained_store
    fig = charts.overlay([runs["mlp"]], "loss", smoothing=0.6)
    raw, smoothed = fig.data[0], fig.data[1]
    assert raw.opacity == 0.25 and list(raw.y) == [h["loss"] for h in runs["mlp"].history]
    assert list(smoothed.y) != list(raw.y)


def test_overlay_by_elapsed_seconds_uses_the_elapsed_times(trained_store):
    _, runs = trained_store
    fig = charts.overlay([runs["mlp"], runs["cnn"]], "val_accuracy", x="elapsed")
    assert list(fig.data[0].x) == [h["elapsed"] for h in runs["mlp"].history]
    assert fig.layout.xaxis.title.text == "elapsed seconds"
    with pytest.raises(ValueError, match="metric must be one of"):
        charts.overlay([runs["mlp"]], "f1")
    with pytest.raises(ValueError, match="x must be one of"):
        charts.overlay([runs["mlp"]], "loss", x="wall")


def test_histories_frame_is_long_form_for_csv(trained_store):
    _, runs = trained_store
    frame = charts.histories_frame([runs["mlp"], runs["cnn"]])
    assert len(frame) == 6 and {"run_id", "label", "epoch", "loss", "val_accuracy", "seconds"} <= set(frame.columns)


def test_confusion_and_difference_heatmaps_show_the_counts(trained_store):
    _, runs = trained_store
    fig = charts.confusion_heatmap(confusion_matrix(runs["cnn"]))
    assert np.asarray(fig.data[0].z).sum() == 1000
    diff = charts.difference_heatmap(confusion_difference(runs["mlp"], runs["cnn"]))
    assert diff.data[0].zmin == -diff.data[0].zmax
