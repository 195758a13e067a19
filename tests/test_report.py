import re
import subprocess
import sys

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
