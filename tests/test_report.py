import html
import re
import subprocess
import sys

import pytest

from mnistlab.views.report import comparison_report
from tests.conftest import ROOT


def test_the_html_report_is_self_contained_and_names_each_run(trained_store):
    _, runs = trained_store
    selected = [runs["mlp"], runs["cnn"]]
    html = comparison_report(selected)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", html)  # Plotly's JavaScript is inline: it opens offline
    assert "plotly" in html.lower() and len(html) > 1_000_000
    for run in selected:
        assert run.label in html and run.run_id in html
        assert f"{run.metrics['test_accuracy']:.4f}" in html
    assert "shipped sample" in html


def test_cli_report_export_and_import(trained_store, tmp_path):
    store, runs = trained_store
    ids = [runs["mlp"].run_id, runs["cnn"].run_id]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "mnistlab", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    report = cli("report", *ids, "-o", str(tmp_path / "r.html"), "--store", str(store.root))
    assert report.returncode == 0, report.stderr
    assert runs["cnn"].label in (tmp_path / "r.html").read_text()
    export = cli("export", *ids, "-o", str(tmp_path / "runs.zip"), "--store", str(store.root))
    assert export.returncode == 0, export.stderr
    imported = cli("import", str(tmp_path / "runs.zip"), "--store", str(tmp_path / "new"), "--json")
    assert imported.returncode == 0, imported.stderr
    assert sorted(__import__("json").loads(imported.stdout)["imported"]) == sorted(ids)
    bad = cli("import", str(tmp_path / "r.html"), "--store", str(tmp_path / "new"))
    assert bad.returncode == 2 and "not a zip file" in bad.stderr and "Traceback" not in bad.stderr


def _visible(html: str) -> str:
    """The report without its scripts (Plotly's library and the figures' data)."""
    return re.sub(r"<script\b.*?</script>", "", html, flags=re.S)


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory):
    """Runs written without training: a finished cnn_dropout, a diverged mlp, two runs sharing a label."""
    from mnistlab import RunConfig, RunStore
    from tests.synthetic import write_runs

    store = RunStore(tmp_path_factory.mktemp("report") / "runs")
    configs = [RunConfig(arch="cnn_dropout", epochs=4, optimizer="adam"),
               RunConfig(arch="mlp", epochs=5, learning_rate=10.0),
               RunConfig(arch="cnn", epochs=3, validation_size=500),
               RunConfig(arch="cnn", epochs=3, validation_size=600)]  # the same label as the one before
    ids = write_runs(store, configs, diverged=(1,))
    return [store.load(run_id) for run_id in ids]


def test_a_report_with_a_diverged_run_shows_no_none_and_no_nan(synthetic_runs):
    finished, diverged = synthetic_runs[:2]
    assert diverged.status == "diverged" and diverged.metrics["test_accuracy"] is None
    html = comparison_report([finished, diverged])
    visible = _visible(html)
    assert not re.search(r"\bNone\b", visible) and not re.search(r"\bnan\b", visible, flags=re.I)
    figures = [s for s in re.findall(r"<script\b.*?</script>", html, flags=re.S)
               if "PLOTLYENV" in s and "plotly.js v" not in s]
    assert figures and not any(re.search(r"\bNaN\b|\bNone\b", figure) for figure in figures)
    row = next(r for r in re.findall(r"<tr>.*?</tr>", visible, flags=re.S) if diverged.run_id in r and "diverged" in r)
    assert "<td>—</td>" in row  # its test accuracy, test loss, kept epoch, kept validation numbers
    assert f"{finished.metrics['test_accuracy']:.4f}" in visible and f"{finished.metrics['test_loss']:.4f}" in visible


def test_report_numbers_have_thousands_separators_and_one_decimal_seconds(synthetic_runs):
    finished = synthetic_runs[0]
    visible = _visible(comparison_report(synthetic_runs))
    assert finished.metrics["params"] == 1_199_882 and "<td>1,199,882</td>" in visible
    assert f"<td>{finished.metrics['split']['fit_images']:,}</td>" in visible  # training images: 3,334
    assert "3,334" in visible
    for run in synthetic_runs:
        assert f"<td>{run.metrics['timings']['fit_seconds']:.1f}</td>" in visible
    assert not re.search(r"<td>\d+\.\d{2,3}</td>", visible)  # no seconds (or anything) to 2-3 decimals
    assert not re.search(r"<td>\d{4,}</td>", visible)  # no integer without its separators


def test_the_report_states_its_smoothing(synthetic_runs):
    assert "smoothing: none" in _visible(comparison_report(synthetic_runs[:1]))
    smoothed = _visible(comparison_report(synthetic_runs[:1], smoothing=0.6))
    assert "smoothing: exponential moving average, weight 0.6 (raw curves faint)" in smoothed


def test_two_runs_with_the_same_label_are_told_apart(synthetic_runs):
    first, second = synthetic_runs[2:]
    assert first.label == second.label and first.run_id != second.run_id
    visible = _visible(comparison_report(synthetic_runs))
    for run in (first, second):
        assert f"<td>{html.escape(run.label)} · {run.run_id[:6]}</td>" in visible
        assert f"<td>{run.run_id}</td>" in visible  # the run-id column stays
    alone = _visible(comparison_report([first, synthetic_runs[0]]))
    assert f"<td>{html.escape(first.label)}</td>" in alone and f"· {first.run_id[:6]}" not in alone
